"""Settings: defaults, validation with a message naming the key, typed KEY=VALUE overrides."""

from __future__ import annotations

import pytest

from importer.sandbox.settings import (
    DEMO_CUSTOMERS,
    DEMO_SEED,
    FAULT_KEYS,
    SandboxSettings,
    coerce_setting,
    parse_override,
    setting_names,
)


def test_documented_defaults() -> None:
    s = SandboxSettings()
    assert (DEMO_SEED, DEMO_CUSTOMERS) == (42, 50)
    assert (s.host, s.port, s.env, s.seed, s.customers) == ("127.0.0.1", 0, "test", 42, 50)
    assert (s.client_id, s.client_secret) == ("sandbox-client-id", "sandbox-client-secret")
    assert (s.token_ttl_s, s.scope, s.token_limit, s.token_window_s) == (7200.0, "market:all", 30, 60.0)
    assert (s.burst_window_s, s.average_window_s, s.time_scale) == (10.0, 60.0, 1.0)
    assert (s.burst_limit_for("uncacheable"), s.average_limit_for("uncacheable")) == (25, 100)
    assert (s.burst_limit_for("cacheable"), s.average_limit_for("cacheable")) == (125, 500)
    assert (s.shared_average_pool, s.count_rejected, s.retry_after, s.reject_duplicates) == (
        True,
        False,
        False,
        False,
    )
    assert (s.page_size_default, s.page_size_max) == (10, 25)
    assert (s.import_rows_per_s, s.import_max_inputs, s.max_running_imports) == (100.0, 10_000, 10)
    assert (s.export_max_records, s.export_records_per_s, s.export_link_ttl_s) == (5_000, 5_000.0, 300.0)
    assert s.request_max_bytes == 64 * 1024 * 1024
    # Settings that are also changeable at run time, but are not faults: their own defaults above.
    not_faults = ("token_ttl_s", "import_rows_per_s", "export_link_ttl_s")
    assert all(
        getattr(s, k) in (0.0, None, False, "create", "502", 5.0, "")
        for k in FAULT_KEYS
        if k not in not_faults
    )
    assert s.email_case_sensitive is True  # the stricter reading of an undocumented behaviour


def test_live_numbers_and_overrides() -> None:
    live = SandboxSettings(env="live")
    assert (live.burst_limit_for("uncacheable"), live.average_limit_for("uncacheable")) == (50, 200)
    assert (live.burst_limit_for("cacheable"), live.average_limit_for("cacheable")) == (250, 1000)
    small = SandboxSettings(burst_limit=3, average_limit=7)
    assert (small.burst_limit_for("uncacheable"), small.average_limit_for("uncacheable")) == (3, 7)
    assert small.burst_limit_for("cacheable") == 125


def test_time_scale_shrinks_windows_and_interval_header() -> None:
    s = SandboxSettings(time_scale=0.1)
    assert (s.burst_window, s.average_window, s.token_window) == pytest.approx((1.0, 6.0, 6.0))
    assert s.interval_header == 6
    assert SandboxSettings().interval_header == 60
    assert SandboxSettings(time_scale=0.001).interval_header == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"env": "prod"}, "sandbox setting env must be one of test, live"),
        ({"error_5xx": 1.5}, "sandbox setting error_5xx must be a probability between 0 and 1"),
        ({"time_scale": 0}, "sandbox setting time_scale must be > 0"),
        (
            {"commit_then_fail_mode": "boom"},
            "sandbox setting commit_then_fail_mode must be '502', 'drop' or 'mixed'",
        ),
        ({"burst_limit": 0}, "sandbox setting burst_limit must be > 0 when set"),
    ],
)
def test_invalid_settings_name_the_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SandboxSettings().with_overrides(**overrides)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown sandbox setting"):
        SandboxSettings().with_overrides(nope=1)


def test_parse_override_types_values() -> None:
    assert parse_override("error_5xx=0.25") == ("error_5xx", 0.25)
    assert parse_override("reject-duplicates=yes") == ("reject_duplicates", True)
    assert parse_override("burst_limit=none") == ("burst_limit", None)
    assert parse_override("burst_limit=5") == ("burst_limit", 5)
    assert parse_override("commit_then_fail_mode=drop") == ("commit_then_fail_mode", "drop")
    assert coerce_setting("retry_after", True) is True
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        parse_override("error_5xx")
    with pytest.raises(ValueError, match="is not a valid"):
        parse_override("port=abc")
    assert set(FAULT_KEYS) <= set(setting_names())
