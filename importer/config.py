"""config.yaml + environment + CLI flags → one frozen, validated `Settings`.

Precedence: CLI flags > `CL_*` environment variables > config file > defaults. `${VAR}` in any
string value is taken from the environment. Every problem is reported as one `ConfigError` that
names the key and the fix, so a nightly job fails at start, not mid-run.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from importer.errors import ConfigError

# Documented Commerce Layer limits for writes and uncacheable reads (shared/commercelayer-api.md §2).
PRESETS: dict[str, dict[str, int]] = {
    "test": {"burst": 25, "average": 100},
    "live": {"burst": 50, "average": 200},
}
ENV_OVERRIDES = {
    "CL_BASE_URL": "base_url",
    "CL_AUTH_URL": "auth_url",
    "CL_CLIENT_ID": "client_id",
    "CL_CLIENT_SECRET": "client_secret",
    "CL_SCOPE": "scope",
}
SCOPE_WARNING = (
    "commercelayer.scope is set ({scope}): a market or stock-location scope can hide customers and "
    "payment methods from the look-ups, so rows fail as not found or existing entries are missed; "
    "an import of wallet entries should run without a scope (unset commercelayer.scope / CL_SCOPE)"
)
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CommerceLayer(_Strict):
    base_url: str | None = None
    auth_url: str = "https://auth.commercelayer.io/oauth/token"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = None

    @field_validator("base_url", "auth_url")
    @classmethod
    def _https_unless_loopback(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not a URL; write it as https://yourdomain.commercelayer.io")
        if parts.scheme == "http" and not is_loopback(parts.hostname):
            raise ValueError(
                f"{value!r} uses http:// to a non-loopback host; use https:// "
                "(plain http is only allowed for 127.0.0.1/localhost, e.g. the sandbox)"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _no_path(cls, value: str | None) -> str | None:
        # The importer appends /api/... itself: `…/api` would make every request /api/api/… and
        # every row fail with NOT_FOUND (measured before this check: exit 1, all rows failed).
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.path or parts.query or parts.fragment:
            rest = value[len(f"{parts.scheme}://{parts.netloc}") :]
            raise ValueError(
                f"{value!r} has a path ({rest}); write only the scheme and host, "
                f"e.g. {parts.scheme}://{parts.netloc} (the importer adds /api/… itself)"
            )
        return value

    @field_validator("auth_url")
    @classmethod
    def _token_endpoint(cls, value: str) -> str:
        if not urlsplit(value).path.endswith("/oauth/token"):
            raise ValueError(
                f"{value!r} is not a token endpoint (its path must end in /oauth/token); "
                "use https://auth.commercelayer.io/oauth/token, or leave commercelayer.auth_url unset"
            )
        return value


class RateLimit(_Strict):
    # None = not given: the preset follows the access token's `test` claim (identity.py), and
    # until the token is read, the test numbers (the stricter ones) apply.
    preset: Literal["test", "live"] | None = None
    burst: int | None = Field(default=None, gt=0)
    burst_window_s: float = Field(default=10.0, gt=0)
    average: int | None = Field(default=None, gt=0)
    average_window_s: float = Field(default=60.0, gt=0)
    # Added to every window the client keeps: the server counts arrival times, the client can only
    # stamp send times, so a request may arrive up to this much later than stamped (docs/rate-limits.md).
    safety_margin_s: float = Field(default=0.25, ge=0)

    @property
    def burst_limit(self) -> int:
        return self.limits_for(self.preset)[0]

    @property
    def average_limit(self) -> int:
        return self.limits_for(self.preset)[1]

    def limits_for(self, preset: str | None) -> tuple[int, int]:
        """(burst, average) under `preset`; explicit `burst`/`average` always win."""
        numbers = PRESETS[preset or "test"]
        return (
            self.burst if self.burst is not None else numbers["burst"],
            self.average if self.average is not None else numbers["average"],
        )


class Retry(_Strict):
    max_attempts: int = Field(default=5, ge=1, le=20)
    base_delay_s: float = Field(default=0.5, gt=0)
    max_delay_s: float = Field(default=30.0, gt=0)
    # Resource-level 401s (not INVALID_TOKEN) in a row, after a token renewal, that abort the run:
    # one is a row the token may not touch; this many with nothing accepted between them means
    # the token may touch nothing (see client.py).
    max_denied_in_a_row: int = Field(default=10, ge=1)


class Timeouts(_Strict):
    connect_s: float = Field(default=10.0, gt=0)
    request_s: float = Field(default=30.0, gt=0)
    shutdown_grace_s: float = Field(default=20.0, ge=0)
    token_margin_s: float = Field(default=60.0, ge=0)


class Lookups(_Strict):
    email_batch: int = Field(default=25, ge=1, le=25)
    # Read the customer's wallet again right before each POST (shared between workers): the
    # two-host window shrinks to about one round trip, at the cost of rate budget
    # (docs/exactly-once.md, "The check-to-POST window").
    check_before_post: bool = False
    wallet_batch: int = Field(default=100, ge=1, le=200)


# `...Settings`, not `Defaults`/`Journal`: those names are the row defaults (validator.py) and
# the journal itself (journal.py); a section's class says it is configuration.
class DefaultsSettings(_Strict):
    reference_origin: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Report(_Strict):
    formats: list[Literal["csv", "xlsx"]] = Field(default_factory=lambda: ["csv"], min_length=1)  # type: ignore[arg-type]


class JournalSettings(_Strict):
    path: str = ".importer/journal.sqlite"
    # A run that finds the journal in use by another run waits this long for it (0: refuse at once).
    wait_s: float = Field(default=0.0, ge=0)


# Documented cacheable-read limits (shared/commercelayer-api.md §2): GET /api/imports is cacheable.
CACHEABLE_PRESETS: dict[str, dict[str, int]] = {
    "test": {"burst": 125, "average": 500},
    "live": {"burst": 250, "average": 1000},
}


class Imports(_Strict):
    """The imports strategy (importer/bulk/, docs/configuration.md "imports")."""

    auto_threshold: int = Field(default=2_000, ge=1)
    chunk_size: int = Field(default=10_000, ge=1, le=10_000)
    # How imports are cut (bulk/sizing.py): `adaptive` starts small and ends the imports
    # together; `fixed` cuts full chunks of chunk_size, the last one partial.
    sizing: Literal["adaptive", "fixed"] = "adaptive"
    min_chunk_size: int = Field(default=1_000, ge=1, le=10_000)
    chunk_target_s: float = Field(default=10.0, gt=0)
    min_chunk_s: float = Field(default=2.0, ge=0)
    last_wave_s: float = Field(default=2.0, ge=0)
    max_in_flight: int = Field(default=10, ge=1, le=10)
    poll_interval_s: float = Field(default=1.0, gt=0)
    readback: Literal["auto", "list", "export", "none"] = "auto"
    export_above: int = Field(default=100, ge=0)
    export_max_records: int = Field(default=5_000, ge=1)
    precheck_snapshot_max: int = Field(default=5_000, ge=0)
    # How the pre-check resolves e-mails (bulk/precheck.py): `auto` exports customers for a
    # batch that would take more than three GETs, `export` always, `list` never.
    email_lookup: Literal["auto", "export", "list"] = "auto"
    resend_interrupted: bool = True
    stream_intake: bool = True
    cacheable_burst: int | None = Field(default=None, gt=0)
    cacheable_average: int | None = Field(default=None, gt=0)
    assumed_rows_per_s: float = Field(default=500.0, gt=0)


class Settings(_Strict):
    commercelayer: CommerceLayer = Field(default_factory=CommerceLayer)
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    concurrency: int = Field(default=8, ge=1, le=64)
    retry: Retry = Field(default_factory=Retry)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    lookups: Lookups = Field(default_factory=Lookups)
    columns: dict[str, str | list[str]] = Field(default_factory=dict)
    defaults: DefaultsSettings = Field(default_factory=DefaultsSettings)
    report: Report = Field(default_factory=Report)
    journal: JournalSettings = Field(default_factory=JournalSettings)
    strategy: Literal["rest", "imports", "auto"] = "rest"
    imports: Imports = Field(default_factory=Imports)
    max_invalid_ratio: float = Field(default=0.5, ge=0, le=1)
    # Excel's row number of the header in every input; None: found in the first 20 rows.
    header_row: int | None = Field(default=None, ge=1)
    # A pairing that already has a wallet entry: leave it (`skip`), or PATCH what differs (`update`).
    on_existing: Literal["skip", "update"] = "skip"
    progress_interval_s: float = Field(default=30.0, gt=0)

    def column_aliases(self) -> dict[str, list[str]]:
        return {k: [v] if isinstance(v, str) else list(v) for k, v in self.columns.items()}

    def fingerprint(self) -> str:
        """A digest of the effective config with secrets left out, for summary.json."""
        data = self.model_dump(mode="json", exclude={"commercelayer": {"client_secret"}})
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def public_dict(self) -> dict[str, Any]:
        """The config as it may be shown: the secret is reduced to whether it is set."""
        data = self.model_dump(mode="json", exclude={"commercelayer": {"client_secret"}})
        data["commercelayer"]["client_secret"] = "***" if self.commercelayer.client_secret else None
        return data


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _expand(value: Any, where: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]", env) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    whole = _VAR.fullmatch(value)
    if whole:
        # An unset variable for a whole value means "not configured": `validate` needs no
        # credentials, and `run` reports the missing one by name.
        return env.get(whole.group(1)) or None

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            raise ConfigError(
                f"config key {where}: environment variable {name} is not set; export it or edit the value"
            )
        return env[name]

    return _VAR.sub(sub, value)


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"config key {key}: unknown key; remove it or check its spelling against docs/configuration.md"
    msg = first["msg"].removeprefix("Value error, ")
    return f"config key {key}: {msg}; fix it in the config file or the matching CL_* variable"


def load_settings(
    path: str | os.PathLike[str] | None,
    *,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[Settings, list[str]]:
    """Load and validate settings. Returns them with a list of warnings for the log.

    `overrides` are CLI flags as dotted keys (`rate_limit.preset`, `report.formats`).
    Layers, weakest first: the file (with ${VAR}s expanded), CL_* variables, CLI flags.
    """
    env = os.environ if env is None else env
    warnings: list[str] = []
    data: dict[str, Any] = {}
    if path is not None:
        loaded = _read_yaml(path)
        warnings += _secret_warnings(path, loaded)
        data = _expand(loaded, "", env)
    _apply_env(data, env)
    _apply_overrides(data, overrides or {})
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    if settings.commercelayer.scope:
        warnings.append(SCOPE_WARNING.format(scope=settings.commercelayer.scope))
    return settings, warnings


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config file as a mapping; ConfigError naming the file and the fix otherwise."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; pass -c with the path to config.yaml") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"config file {path} cannot be read ({exc.__class__.__name__}); check it is UTF-8 text"
        ) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{at}; fix its syntax") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must be a mapping of keys (commercelayer:, rate_limit:, …)")
    return loaded


def _secret_warnings(path: str | os.PathLike[str], loaded: Mapping[str, Any]) -> list[str]:
    """A literal client_secret in a file other users can read is worth a warning."""
    raw_secret = (loaded.get("commercelayer") or {}).get("client_secret")
    if not isinstance(raw_secret, str) or not raw_secret or _VAR.search(raw_secret):
        return []
    if not Path(path).stat().st_mode & (stat.S_IRGRP | stat.S_IROTH):
        return []
    return [
        f"{path} holds a literal client_secret and is readable by other users; "
        "use client_secret: ${CL_CLIENT_SECRET} or chmod 600 the file"
    ]


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    """CL_* variables win over the file's commercelayer keys."""
    cl = dict(data.get("commercelayer") or {})
    for var, key in ENV_OVERRIDES.items():
        if env.get(var):
            cl[key] = env[var]
    data["commercelayer"] = cl


def _apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    """CLI flags, as dotted keys, win over everything; an unset flag (None) changes nothing."""
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
