"""Test or live, and the API address, from the access token; config mistakes caught before any
request. The sandbox issues JWT-shaped tokens whose `test` claim follows its --env.

No test sends anything to a derived (non-loopback) address: the derivation is tested as a pure
function, and the CLI path only up to its refusal."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import (
    SandboxProcess,
    api_of,
    cli,
    journal_query,
    rate_limit_for,
    results,
    run_argv,
    status_counts,
    summary,
    write_config,
    write_id_pairs,
)
from test_runlock import error_messages

from importer.config import load_settings
from importer.credentials import settings_for_token
from importer.errors import EXIT_USAGE, ConfigError
from importer.identity import PresetRefused, TokenClaims, choose_preset, core_api_base_url, decode_claims
from importer.sandbox.store import jwt_shaped
from importer.sandbox.testing import SandboxThread, fast_settings

ROWS = 6


def _payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


# -- pure -------------------------------------------------------------------------------------------


def test_claims_are_read_from_the_payload_without_a_signature_check() -> None:
    token = jwt_shaped(
        {"organization": {"slug": "acme", "id": "Xyz"}, "application": {"kind": "integration"}, "test": False}
    )
    assert decode_claims(token) == TokenClaims(
        test=False, organization_slug="acme", organization_id="Xyz", application_kind="integration"
    )
    assert decode_claims("opaque-token") is None
    assert decode_claims("a.!!!.c") is None
    assert decode_claims(jwt_shaped({"test": "yes"})) == TokenClaims(None, None, None, None)


def test_the_base_url_is_derived_as_js_auth_does() -> None:
    assert core_api_base_url("acme") == "https://acme.commercelayer.io"


TEST_ORG = TokenClaims(True, "acme", "X", "integration")
LIVE_ORG = TokenClaims(False, "acme", "X", "integration")


def test_without_a_preset_the_token_decides() -> None:
    assert choose_preset(None, TEST_ORG, force=False).preset == "test"
    assert choose_preset(None, LIVE_ORG, force=False).preset == "live"
    unknown = choose_preset(None, None, force=False)
    assert unknown.preset == "test" and unknown.warning is not None


def test_a_preset_that_agrees_says_nothing() -> None:
    assert choose_preset("live", LIVE_ORG, force=False).warning is None
    assert choose_preset("test", TEST_ORG, force=False).warning is None


def test_test_limits_on_a_live_org_are_a_loud_warning() -> None:
    choice = choose_preset("test", LIVE_ORG, force=False)
    assert choice.preset == "test"
    assert choice.warning is not None and choice.warning.startswith(
        "WARNING: the access token is for the LIVE"
    )


def test_live_limits_on_a_test_org_are_refused_unless_forced() -> None:
    with pytest.raises(PresetRefused) as refused:
        choose_preset("live", TEST_ORG, force=False)
    assert refused.value.exit_code == EXIT_USAGE
    assert "TEST organization acme" in str(refused.value) and "--force" in str(refused.value)
    forced = choose_preset("live", TEST_ORG, force=True)
    assert forced.preset == "live" and forced.warning is not None and "--force" in forced.warning


# -- the sandbox's tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "test"), [("test", True), ("live", False)])
def test_the_sandbox_token_carries_the_claims(env: str, test: bool) -> None:
    import urllib.request

    with SandboxThread(fast_settings(env=env)) as sb:
        body = json.dumps(
            {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret}
        ).encode()
        req = urllib.request.Request(sb.auth_url, data=body, method="POST")
        req.add_header("Content-Type", "application/json")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(req, timeout=30) as response:
            answer = json.loads(response.read())
    payload = _payload(answer["access_token"])
    assert payload["test"] is test
    assert payload["organization"] == {"slug": "sandbox-org", "id": "wRPpEFOAkD"}
    assert payload["application"]["kind"] == "integration"
    assert payload["exp"] - payload["iat"] == 7200


# -- through the command line -----------------------------------------------------------------------


@pytest.fixture(scope="module", params=["test", "live"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxProcess]:
    # Windows the importer's own settings cannot be faster than (explicit numbers win over presets),
    # so only the preset's name and the refusal are under test here.
    with SandboxProcess("--env", request.param, "--time-scale", "0.05", "--customers", "40") as sb:
        yield sb


def _config(sb: SandboxProcess, tmp_path: Path, **commercelayer: Any) -> Path:
    write_id_pairs(tmp_path / "in.csv", ROWS, customers=40)
    return write_config(
        tmp_path / "config.yaml",
        api_of(sb),
        tmp_path / "journal.sqlite",
        rate_limit=rate_limit_for(0.05, 25, 100),
        commercelayer=commercelayer,
    )


def _api_requests(sb: SandboxProcess) -> int:
    return sum(1 for e in sb.requests_log() if e["path"].startswith("/api"))


def _env(sb: SandboxProcess) -> str:
    return str(sb.admin("GET", "settings")["env"])


def test_no_preset_given_follows_the_token(sandbox: SandboxProcess, tmp_path: Path) -> None:
    config = _config(sandbox, tmp_path)
    out = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rep"))
    assert out.code == 0, out.err[-2000:]
    assert summary(tmp_path / "rep")["rate_limit_preset"] == _env(sandbox)
    assert "run.preset_mismatch" not in out.err


def test_a_disagreeing_preset_is_warned_about_or_refused(sandbox: SandboxProcess, tmp_path: Path) -> None:
    config = _config(sandbox, tmp_path)
    other = "live" if _env(sandbox) == "test" else "test"
    before = _api_requests(sandbox)
    out = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rep", "--env", other))
    if other == "test":  # test limits on a live org: slower than allowed, never harmful
        assert out.code == 0, out.err[-2000:]
        assert "run.preset_mismatch" in out.err and "WARNING: the access token is for the LIVE" in out.err
        assert summary(tmp_path / "rep")["rate_limit_preset"] == "test"
        return
    # live limits on a test org: refused before any /api request, every row not_attempted.
    assert out.code == EXIT_USAGE, out.err[-2000:]
    (line,) = error_messages(out.err)
    assert "the access token is for a TEST organization sandbox-org" in line and "--force" in line
    assert _api_requests(sandbox) == before
    assert status_counts(results(tmp_path / "rep")) == {"not_attempted": ROWS}
    forced = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rep2", "--env", "live", "--force"))
    assert forced.code == 0, forced.err[-2000:]
    assert "WARNING (--force)" in forced.err
    assert summary(tmp_path / "rep2")["rate_limit_preset"] == "live"


def test_a_base_url_with_api_is_refused_before_any_request(sandbox: SandboxProcess, tmp_path: Path) -> None:
    config = _config(sandbox, tmp_path, base_url=f"{sandbox.base_url}/api")
    before = len(sandbox.requests_log())
    out = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rep"))
    assert out.code == EXIT_USAGE
    assert error_messages(out.err) == [
        f"config key commercelayer.base_url: '{sandbox.base_url}/api' has a path (/api); "
        f"write only the scheme and host, e.g. {sandbox.base_url} (the importer adds /api/… itself); "
        "fix it in the config file or the matching CL_* variable"
    ]
    assert len(sandbox.requests_log()) == before


def test_no_base_url_with_a_local_token_endpoint_is_refused(sandbox: SandboxProcess, tmp_path: Path) -> None:
    """The token names organization sandbox-org; its public address is never contacted."""
    config = _config(sandbox, tmp_path, base_url=None)
    before = len(sandbox.requests_log())
    out = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rep"))
    assert out.code == EXIT_USAGE, out.err[-2000:]
    (line,) = error_messages(out.err)
    assert "the token names organization sandbox-org (https://sandbox-org.commercelayer.io)" in line
    assert "set commercelayer.base_url (CL_BASE_URL)" in line
    # One token request to the sandbox, nothing else anywhere; nothing was read into a journal.
    assert [e["path"] for e in sandbox.requests_log()[before:]] == ["/oauth/token"]
    assert journal_query(tmp_path / "journal.sqlite", "SELECT COUNT(*) FROM runs") == [(0,)]


def test_the_settings_take_the_base_url_from_the_token_and_keep_the_rest() -> None:
    """Pure: nothing is sent anywhere (the derived address is not loopback)."""
    settings, _ = load_settings(
        None,
        overrides={"commercelayer.client_id": "cid", "concurrency": 3},
        env={"CL_CLIENT_SECRET": "s3cret"},
    )
    token = jwt_shaped({"organization": {"slug": "acme", "id": "X"}, "test": False})
    derived = settings_for_token(settings, token)
    assert derived.commercelayer.base_url == "https://acme.commercelayer.io"
    assert derived.commercelayer.client_secret is not None
    assert derived.commercelayer.client_secret.get_secret_value() == "s3cret"
    assert derived.concurrency == 3 and derived.commercelayer.client_id == "cid"
    with pytest.raises(ConfigError, match="the access token names no organization"):
        settings_for_token(settings, jwt_shaped({"test": True}))
    with pytest.raises(ConfigError, match="the access token names no organization"):
        settings_for_token(settings, "opaque")
