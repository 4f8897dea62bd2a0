"""Every knob of the sandbox, with its default, in one frozen dataclass.

`docs/sandbox.md` lists them all and says which ones copy a documented Commerce Layer number and
which ones are assumptions. Windows are stated in real Commerce Layer seconds; `time_scale`
multiplies every window (0.1 turns the 10 s burst window into 1 s and the 60 s one into 6 s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

# `importer demo` and samples/ use exactly these; the seed data is deterministic across runs.
DEMO_SEED = 42
DEMO_CUSTOMERS = 50

DEFAULT_CLIENT_ID = "sandbox-client-id"
DEFAULT_CLIENT_SECRET = "sandbox-client-secret"

ENVS = ("test", "live")
RATE_CLASSES = ("cacheable", "uncacheable")
ERROR_5XX_SCOPES = ("create", "writes", "api")
COMMIT_THEN_FAIL_SCOPES = ("create", "writes")
COMMIT_THEN_FAIL_MODES = ("502", "drop", "mixed")
RETRY_AFTER_FORMATS = ("seconds", "http-date")
LIST_ORDERS = ("oldest_first", "newest_first")
ERRORS_LOG_KEYS = ("index", "opaque")  # how errors_log names a failed input (UNCONFIRMED)

# Keys that `POST /_sandbox/faults` and `--fault KEY=VALUE` may change (plus `storm_s` at runtime).
FAULT_KEYS = (
    "error_5xx",
    "error_5xx_scope",
    "commit_then_fail",
    "commit_then_fail_mode",
    "commit_then_fail_scope",
    "connection_reset",
    "latency_median_s",
    "latency_sigma",
    "slow_response",
    "slow_response_s",
    "token_ttl_s",
    "storm_start_s",
    "storm_duration_s",
    "reject_duplicates",
    "unauthorized",
    "unauthorized_customers",
    "conflict_409",
    "conflict_409_unseen",
    "fault_seed",
    "import_rows_per_s",
    "imports_error_5xx",
    "imports_lost_answer",
    "exports_error_5xx",
    "export_link_ttl_s",
)
_PROBABILITIES = (
    "error_5xx",
    "commit_then_fail",
    "connection_reset",
    "slow_response",
    "unauthorized",
    "conflict_409",
    "imports_error_5xx",
    "imports_lost_answer",
    "exports_error_5xx",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SandboxSettings:
    # Server and credentials.
    host: str = "127.0.0.1"
    port: int = 0
    env: str = "test"
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    token_ttl_s: float = 7200.0
    scope: str = "market:all"
    # The organization the tokens name (`organization.slug`/`id` in their payload; `test` follows env).
    organization_slug: str = "sandbox-org"
    organization_id: str = "wRPpEFOAkD"

    # Data.
    seed: int = DEMO_SEED
    customers: int = DEMO_CUSTOMERS
    seed_file: str | None = None
    state_path: str | None = None
    reject_duplicates: bool = False
    # `filter[q][email_eq|email_in]` as SQL `=`/`IN`: case-sensitive. Nothing documents that
    # Commerce Layer folds case, so the stricter reading is the default.
    email_case_sensitive: bool = True
    # A list's order without `sort`. Commerce Layer documents none; `newest_first` lets a test
    # prove that a client which needs an order asks for one.
    list_order: str = "oldest_first"
    page_size_default: int = 10
    page_size_max: int = 25
    request_log_max: int = 200_000
    request_max_bytes: int = 64 * 1024 * 1024

    # Rate limits (per client IP). `burst_limit`/`average_limit` override the uncacheable numbers
    # of the current env when set (handy in tests).
    time_scale: float = 1.0
    burst_window_s: float = 10.0
    average_window_s: float = 60.0
    uncacheable_burst_test: int = 25
    uncacheable_average_test: int = 100
    uncacheable_burst_live: int = 50
    uncacheable_average_live: int = 200
    cacheable_burst_test: int = 125
    cacheable_average_test: int = 500
    cacheable_burst_live: int = 250
    cacheable_average_live: int = 1000
    burst_limit: int | None = None
    average_limit: int | None = None
    token_limit: int = 30
    token_window_s: float = 60.0
    shared_average_pool: bool = True
    count_rejected: bool = False
    retry_after: bool = False
    retry_after_format: str = "seconds"

    # Imports API.
    import_rows_per_s: float = 100.0
    import_max_inputs: int = 10_000
    max_running_imports: int = 10
    import_error_threshold: float = 0.1
    import_errors_log_keys: str = "index"

    # Exports API (customer_payment_sources only).
    export_max_records: int = 5_000
    export_records_per_s: float = 5_000.0
    export_link_ttl_s: float = 300.0

    # Faults: all off by default.
    fault_seed: int = 0
    error_5xx: float = 0.0
    error_5xx_scope: str = "create"
    commit_then_fail: float = 0.0
    commit_then_fail_mode: str = "502"
    commit_then_fail_scope: str = "create"
    connection_reset: float = 0.0
    latency_median_s: float = 0.0
    latency_sigma: float = 0.0
    slow_response: float = 0.0
    slow_response_s: float = 5.0
    storm_start_s: float | None = None
    storm_duration_s: float = 0.0
    # Resource-level 401 (UNAUTHORIZED, "Access denied") on POST /api/customer_payment_sources:
    # at this rate, and always for these customer ids (comma-separated), as a market scope would.
    unauthorized: float = 0.0
    unauthorized_customers: str = ""
    # 409 "Record not unique" on that POST, at this rate. The record is stored first (a concurrent
    # writer won the race); with conflict_409_unseen nothing is stored (the clash is with a record
    # the importer's look-up cannot see).
    conflict_409: float = 0.0
    conflict_409_unseen: bool = False
    imports_error_5xx: float = 0.0
    imports_lost_answer: float = 0.0
    exports_error_5xx: float = 0.0

    def __post_init__(self) -> None:
        _check(self.env in ENVS, "env", f"must be one of {', '.join(ENVS)}")
        _check(
            self.import_errors_log_keys in ERRORS_LOG_KEYS,
            "import_errors_log_keys",
            f"must be one of {', '.join(ERRORS_LOG_KEYS)}",
        )
        _check(
            self.error_5xx_scope in ERROR_5XX_SCOPES, "error_5xx_scope", "must be 'create', 'writes' or 'api'"
        )
        _check(
            self.commit_then_fail_scope in COMMIT_THEN_FAIL_SCOPES,
            "commit_then_fail_scope",
            "must be 'create' or 'writes'",
        )
        _check(
            self.commit_then_fail_mode in COMMIT_THEN_FAIL_MODES,
            "commit_then_fail_mode",
            "must be '502', 'drop' or 'mixed'",
        )
        _check(self.list_order in LIST_ORDERS, "list_order", "must be 'oldest_first' or 'newest_first'")
        _check(
            self.retry_after_format in RETRY_AFTER_FORMATS,
            "retry_after_format",
            "must be 'seconds' or 'http-date'",
        )
        for name in _PROBABILITIES:
            _check(0.0 <= getattr(self, name) <= 1.0, name, "must be a probability between 0 and 1")
        for name in ("time_scale", "burst_window_s", "average_window_s", "token_window_s", "token_ttl_s"):
            _check(getattr(self, name) > 0, name, "must be > 0")
        for name in (
            "import_rows_per_s",
            "import_max_inputs",
            "max_running_imports",
            "token_limit",
            "request_max_bytes",
            "export_max_records",
            "export_records_per_s",
            "export_link_ttl_s",
        ):
            _check(getattr(self, name) > 0, name, "must be > 0")
        for name in ("latency_median_s", "latency_sigma", "slow_response_s", "storm_duration_s"):
            _check(getattr(self, name) >= 0, name, "must be >= 0")
        _check(self.customers >= 0, "customers", "must be >= 0")
        _check(
            1 <= self.page_size_default <= self.page_size_max, "page_size_default", "must be 1..page_size_max"
        )
        for name in ("burst_limit", "average_limit"):
            value = getattr(self, name)
            _check(value is None or value > 0, name, "must be > 0 when set")

    # Effective numbers -------------------------------------------------------------------------

    def burst_limit_for(self, rate_class: str) -> int:
        if rate_class == "uncacheable" and self.burst_limit is not None:
            return self.burst_limit
        return int(getattr(self, f"{rate_class}_burst_{self.env}"))

    def average_limit_for(self, rate_class: str) -> int:
        if rate_class == "uncacheable" and self.average_limit is not None:
            return self.average_limit
        return int(getattr(self, f"{rate_class}_average_{self.env}"))

    @property
    def burst_window(self) -> float:
        return self.burst_window_s * self.time_scale

    @property
    def average_window(self) -> float:
        return self.average_window_s * self.time_scale

    @property
    def token_window(self) -> float:
        return self.token_window_s * self.time_scale

    @property
    def interval_header(self) -> int:
        """`X-Ratelimit-Interval`: the (scaled) average window in whole seconds, at least 1."""
        return max(1, math.ceil(self.average_window - 1e-9))

    def with_overrides(self, **overrides: Any) -> SandboxSettings:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown sandbox setting(s): {', '.join(unknown)}")
        return replace(self, **overrides)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ValueError(f"sandbox setting {name} {message}")


def setting_names() -> tuple[str, ...]:
    return tuple(f.name for f in fields(SandboxSettings))


def parse_override(assignment: str) -> tuple[str, Any]:
    """Parse `KEY=VALUE` from the command line into a typed (name, value) pair."""
    key, sep, text = assignment.partition("=")
    key = key.strip().replace("-", "_")
    if not sep:
        raise ValueError(f"expected KEY=VALUE, got {assignment!r}")
    return key, coerce_setting(key, text.strip())


def coerce_setting(key: str, value: Any) -> Any:
    """Turn a text or JSON value into the type the setting `key` has."""
    types = {f.name: str(f.type) for f in fields(SandboxSettings)}
    if key not in types:
        raise ValueError(f"unknown sandbox setting: {key}")
    kind = types[key]
    optional = "None" in kind
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("", "none", "null"))):
        return None
    try:
        if kind.startswith("bool"):
            return _to_bool(value)
        if kind.startswith("int"):
            return int(value)
        if kind.startswith("float"):
            return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"sandbox setting {key}: {value!r} is not a valid {kind}") from exc
    return str(value)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)
