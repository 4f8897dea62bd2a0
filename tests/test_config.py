"""Every rule of config.py, the repository's config.yaml, and the configuration reference."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers_files import error_message
from pydantic import BaseModel

from importer.config import PRESETS, Settings, is_loopback, load_settings
from importer.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cr3t-value-do-not-leak"


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None, **kw: Any) -> Settings:
    settings, _ = load_settings(write(tmp_path, text), env=env or {}, **kw)
    return settings


def settings_keys(model: type[BaseModel] = Settings, prefix: str = "") -> list[str]:
    """Every dotted key of Settings, parents and leaves, walking nested models."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        dotted = f"{prefix}{name}"
        keys.append(dotted)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(settings_keys(annotation, f"{dotted}."))
    return keys


# -- defaults and the happy path ---------------------------------------------------------------
def test_no_file_gives_defaults() -> None:
    settings, warnings = load_settings(None, env={})
    assert warnings == []
    assert settings == Settings()
    assert settings.concurrency == 8
    assert settings.rate_limit.burst_limit == PRESETS["test"]["burst"]
    assert settings.rate_limit.average_limit == PRESETS["test"]["average"]
    assert settings.report.formats == ["csv"]


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load(tmp_path, "") == Settings()


def test_values_are_read(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        """
commercelayer: {base_url: "https://acme.commercelayer.io/", client_id: abc}
rate_limit: {preset: live, burst: 40}
concurrency: 16
columns: {customer_email: [E-mail, Mail], payment_source_id: PM}
report: {formats: [csv, xlsx]}
""",
    )
    assert s.commercelayer.base_url == "https://acme.commercelayer.io"  # trailing slash dropped
    assert s.rate_limit.burst_limit == 40
    assert s.rate_limit.average_limit == PRESETS["live"]["average"]
    assert s.concurrency == 16
    assert s.column_aliases() == {"customer_email": ["E-mail", "Mail"], "payment_source_id": ["PM"]}
    assert s.report.formats == ["csv", "xlsx"]


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = load(tmp_path, "concurrency: 4")
    with pytest.raises(ValueError, match="frozen"):
        s.concurrency = 5  # type: ignore[misc]


# -- errors name the key -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("concurency: 4", "concurency"),
        ("retry: {max_attempt: 3}", "retry.max_attempt"),
        ("commercelayer: {client_secrett: x}", "commercelayer.client_secrett"),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert str(err.value) == (
        f"config key {key}: unknown key; remove it or check its spelling against docs/configuration.md"
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("concurrency: many", "concurrency"),
        ("retry: {max_attempts: five}", "retry.max_attempts"),
        ("rate_limit: {preset: staging}", "rate_limit.preset"),
        ("report: {formats: [pdf]}", "report.formats.0"),
        ("columns: {customer_email: 3}", "columns.customer_email"),
        ("timeouts: {request_s: [1]}", "timeouts.request_s"),
    ],
)
def test_wrong_type_is_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config key {re.escape(key)}"):
        load(tmp_path, text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("concurrency: 0", "concurrency"),
        ("concurrency: 65", "concurrency"),
        ("max_invalid_ratio: 2", "max_invalid_ratio"),
        ("max_invalid_ratio: -0.1", "max_invalid_ratio"),
        ("retry: {max_attempts: 0}", "retry.max_attempts"),
        ("rate_limit: {burst: 0}", "rate_limit.burst"),
        ("lookups: {email_batch: 26}", "lookups.email_batch"),
        ("progress_interval_s: 0", "progress_interval_s"),
        ("report: {formats: []}", "report.formats"),
    ],
)
def test_impossible_value_is_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^config key {re.escape(key)}: .*; fix it in the config file"):
        load(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=f"config file {re.escape(str(missing))} not found"):
        load_settings(missing, env={})


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not valid YAML at line 2"):
        load(tmp_path, "concurrency: 4\nretry: x: y\n")


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        load(tmp_path, "- a\n- b\n")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(b"concurrency: \xff\xfe\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(path, env={})


# -- ${VAR} expansion ------------------------------------------------------------------------------
def test_var_expansion(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        "commercelayer: {base_url: 'https://${SLUG}.commercelayer.io', client_id: '${ID}'}\n"
        "defaults: {metadata: {team: '${TEAM}-finance'}}\n",
        env={"SLUG": "acme", "ID": "client-1", "TEAM": "emea"},
    )
    assert s.commercelayer.base_url == "https://acme.commercelayer.io"
    assert s.commercelayer.client_id == "client-1"
    assert s.defaults.metadata == {"team": "emea-finance"}


def test_whole_value_unset_var_means_not_configured(tmp_path: Path) -> None:
    s = load(tmp_path, "commercelayer: {client_id: '${CL_CLIENT_ID}', client_secret: '${CL_CLIENT_SECRET}'}")
    assert s.commercelayer.client_id is None
    assert s.commercelayer.client_secret is None


def test_unset_var_in_mixed_string_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "commercelayer: {base_url: 'https://${SLUG}.commercelayer.io'}")
    assert str(err.value) == (
        "config key commercelayer.base_url: environment variable SLUG is not set; export it or edit the value"
    )


def test_unset_var_in_list_names_index(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"config key columns\.customer_email\[1\]: environment variable MAIL"
    ):
        load(tmp_path, "columns: {customer_email: [Email, 'x-${MAIL}']}")


# -- environment and CLI precedence ----------------------------------------------------------------
def test_cl_env_overrides_the_file(tmp_path: Path) -> None:
    s = load(
        tmp_path,
        "commercelayer: {base_url: 'https://file.commercelayer.io', client_id: from-file, scope: 'market:1'}",
        env={
            "CL_BASE_URL": "https://env.commercelayer.io",
            "CL_CLIENT_ID": "from-env",
            "CL_CLIENT_SECRET": SECRET,
            "CL_AUTH_URL": "https://auth.example.com/oauth/token",
        },
    )
    assert s.commercelayer.base_url == "https://env.commercelayer.io"
    assert s.commercelayer.client_id == "from-env"
    assert s.commercelayer.client_secret is not None
    assert s.commercelayer.client_secret.get_secret_value() == SECRET
    assert s.commercelayer.auth_url == "https://auth.example.com/oauth/token"
    assert s.commercelayer.scope == "market:1"  # CL_SCOPE not set: the file's value stays


def test_empty_env_var_does_not_override(tmp_path: Path) -> None:
    s = load(tmp_path, "commercelayer: {client_id: from-file}", env={"CL_CLIENT_ID": ""})
    assert s.commercelayer.client_id == "from-file"


def test_env_applies_without_a_file() -> None:
    s, _ = load_settings(None, env={"CL_CLIENT_ID": "abc"})
    assert s.commercelayer.client_id == "abc"


def test_cli_env_flag_overrides_preset(tmp_path: Path) -> None:
    s = load(tmp_path, "rate_limit: {preset: test}", overrides={"rate_limit.preset": "live"})
    assert s.rate_limit.preset == "live"
    assert s.rate_limit.burst_limit == PRESETS["live"]["burst"]


def test_cli_override_none_is_ignored(tmp_path: Path) -> None:
    s = load(tmp_path, "rate_limit: {preset: live}", overrides={"rate_limit.preset": None})
    assert s.rate_limit.preset == "live"


def test_cli_override_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config key rate_limit\.preset"):
        load(tmp_path, "", overrides={"rate_limit.preset": "prod"})


# -- URLs --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url", ["http://acme.commercelayer.io", "http://10.0.0.5:8080", "http://example.com"]
)
def test_http_to_non_loopback_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"^config key commercelayer\.base_url: .*uses http://"):
        load(tmp_path, f"commercelayer: {{base_url: '{url}'}}")


def test_http_auth_url_to_non_loopback_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config key commercelayer\.auth_url"):
        load(tmp_path, "commercelayer: {auth_url: 'http://auth.commercelayer.io/oauth/token'}")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9000", "http://[::1]:8000"])
def test_http_to_loopback_is_allowed(tmp_path: Path, url: str) -> None:
    assert load(tmp_path, f"commercelayer: {{base_url: '{url}'}}").commercelayer.base_url == url


def test_not_a_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a URL"):
        load(tmp_path, "commercelayer: {base_url: acme.commercelayer.io}")


@pytest.mark.parametrize(
    ("url", "rest"),
    [
        ("https://acme.commercelayer.io/api", "/api"),
        ("https://acme.commercelayer.io/api/", "/api"),
        ("http://127.0.0.1:8080/api/customers", "/api/customers"),
        ("https://acme.commercelayer.io?x=1", "?x=1"),
    ],
)
def test_a_base_url_with_a_path_is_refused(tmp_path: Path, url: str, rest: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"commercelayer: {{base_url: '{url}'}}")
    host = url.split("/")[2].split("?")[0]
    scheme = url.split(":")[0]
    assert str(err.value) == (
        f"config key commercelayer.base_url: '{url.rstrip('/')}' has a path ({rest}); write only the "
        f"scheme and host, e.g. {scheme}://{host} (the importer adds /api/… itself); "
        "fix it in the config file or the matching CL_* variable"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://auth.commercelayer.io",
        "https://acme.commercelayer.io/api",
        "https://auth.commercelayer.io/token",
    ],
)
def test_an_auth_url_that_is_not_a_token_endpoint_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"^config key commercelayer\.auth_url: .* is not a token endpoint"):
        load(tmp_path, "", env={"CL_AUTH_URL": url})


def test_a_scope_is_a_warning_not_an_error(tmp_path: Path) -> None:
    settings, warnings = load_settings(
        write(tmp_path, "commercelayer: {scope: 'market:code:europe'}"), env={}
    )
    assert settings.commercelayer.scope == "market:code:europe"
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "commercelayer.scope is set (market:code:europe): a market or stock-location"
    )
    _, none = load_settings(write(tmp_path, "commercelayer: {client_id: x}"), env={})
    assert none == []


def test_is_loopback() -> None:
    assert is_loopback("localhost")
    assert is_loopback("127.0.0.2")
    assert is_loopback("[::1]")
    assert not is_loopback("example.com")
    assert not is_loopback("192.168.1.1")


# -- secrets ---------------------------------------------------------------------------------------
def test_literal_secret_in_world_readable_file_warns(tmp_path: Path) -> None:
    path = write(tmp_path, f"commercelayer: {{client_secret: {SECRET}}}", mode=0o644)
    settings, warnings = load_settings(path, env={})
    assert len(warnings) == 1
    assert "holds a literal client_secret and is readable by other users" in warnings[0]
    assert SECRET not in warnings[0]
    assert settings.commercelayer.client_secret is not None


def test_literal_secret_in_private_file_does_not_warn(tmp_path: Path) -> None:
    path = write(tmp_path, f"commercelayer: {{client_secret: {SECRET}}}", mode=0o600)
    assert load_settings(path, env={})[1] == []


def test_secret_from_variable_does_not_warn(tmp_path: Path) -> None:
    path = write(tmp_path, "commercelayer: {client_secret: '${CL_CLIENT_SECRET}'}", mode=0o644)
    assert load_settings(path, env={"CL_CLIENT_SECRET": SECRET})[1] == []


def test_fingerprint_and_public_dict_never_hold_the_secret(tmp_path: Path) -> None:
    with_secret = load(tmp_path, "concurrency: 4", env={"CL_CLIENT_SECRET": SECRET})
    other_secret = load(tmp_path, "concurrency: 4", env={"CL_CLIENT_SECRET": "another"})
    without = load(tmp_path, "concurrency: 4")
    public = with_secret.public_dict()
    assert SECRET not in repr(public)
    assert public["commercelayer"]["client_secret"] == "***"
    assert without.public_dict()["commercelayer"]["client_secret"] is None
    assert SECRET not in with_secret.fingerprint()
    assert SECRET not in repr(with_secret) and SECRET not in str(with_secret.commercelayer)
    # The secret is left out of the digest entirely: rotating it is not a config change.
    assert with_secret.fingerprint() == other_secret.fingerprint() == without.fingerprint()
    assert load(tmp_path, "concurrency: 5").fingerprint() != without.fingerprint()


# -- the repository's config.yaml and the reference ------------------------------------------------
def test_repository_config_yaml_loads_and_is_the_defaults() -> None:
    path = ROOT / "config.yaml"
    settings, warnings = load_settings(path, env={})
    assert warnings == []
    assert settings == Settings()


def test_repository_config_yaml_lists_every_key() -> None:
    data = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    missing = []
    for dotted in settings_keys():
        node: Any = data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(dotted)
                break
            node = node[part]
    assert missing == []


def test_configuration_reference_documents_every_key() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    leaves = [k for k in settings_keys() if not any(o.startswith(k + ".") for o in settings_keys())]
    assert [k for k in leaves if f"`{k}`" not in text] == []
    for var in ("CL_BASE_URL", "CL_AUTH_URL", "CL_CLIENT_ID", "CL_CLIENT_SECRET", "CL_SCOPE", "--env"):
        assert var in text


def test_settings_keys_walks_nested_models() -> None:
    keys = settings_keys()
    assert "commercelayer.client_secret" in keys
    assert "timeouts.token_margin_s" in keys
    assert "max_invalid_ratio" in keys
    assert len(keys) == len(set(keys))


def test_environment_is_not_read_when_env_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CL_CLIENT_ID", "from-process")
    assert load_settings(None, env={})[0].commercelayer.client_id is None
    assert load_settings(None)[0].commercelayer.client_id == "from-process"
    assert os.environ["CL_CLIENT_ID"] == "from-process"


# -- through the command line ------------------------------------------------------------------------
def test_unknown_key_exits_2_via_main(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import structlog

    from importer.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text("customer_id,payment_source_type,payment_source_id\n")
    write(tmp_path, "rate_limit: {presett: live}")
    try:
        assert main(["validate", "in.csv", "-c", "config.yaml", "--log-format", "json"]) == 2
    finally:
        structlog.reset_defaults()
    err = error_message(capsys.readouterr().err)
    assert "importer: error: config key rate_limit.presett: unknown key" in err


def test_cli_env_flag_reaches_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from importer.commands import _settings

    for var in ("CL_BASE_URL", "CL_CLIENT_ID", "CL_CLIENT_SECRET", "CL_AUTH_URL", "CL_SCOPE"):
        monkeypatch.delenv(var, raising=False)
    path = write(tmp_path, "rate_limit: {preset: test}")
    assert _settings(argparse.Namespace(env="live"), str(path)).rate_limit.preset == "live"
    assert _settings(argparse.Namespace(env=None), str(path)).rate_limit.preset == "test"
    assert _settings(argparse.Namespace(), str(path)).rate_limit.preset == "test"  # validate has no --env
