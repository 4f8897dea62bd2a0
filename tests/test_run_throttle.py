"""The rate limiter against the sandbox's own accounting, and a large import."""

from __future__ import annotations

from pathlib import Path

from run_helpers import (
    created_count,
    duplicates,
    run_import,
    sandbox_process,
    sandbox_thread,
    settings_for,
    statuses,
    window_max,
)
from structlog.testing import capture_logs

from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_SEED


def test_no_window_ever_holds_more_than_its_limit(tmp_path: Path) -> None:
    # Windows of 0.1 s (burst, 5 per endpoint) and 1 s (average, 20 shared): tight enough that
    # the run is limited by them all the way through. The sandbox runs as its own process, so
    # its arrival times are the server's, not skewed by sharing our GIL. The burst window is
    # short so that with settings_for's 0.15 s margin (which a loaded machine's arrival lag
    # needs) four bursts still fit in one average window, and the budget is used fully.
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=70)
    with sandbox_process(
        "--time-scale",
        "0.025",
        "--set",
        "average_window_s=40",
        "--set",
        "burst_window_s=4",
        "--set",
        "burst_limit=5",
        "--set",
        "average_limit=20",
        "--customers",
        str(info.customers),
    ) as sb:
        burst_s, average_s = sb.settings.burst_window, sb.settings.average_window
        assert (burst_s, average_s) == (0.1, 1.0)
        with capture_logs() as logs:
            out = run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        assert statuses(tmp_path / "rep") == {"created": 70}
        progress = [e for e in logs if e["event"] == "run.progress"]
        assert progress and {"done", "total", "rows_per_s", "paused"} <= set(progress[-1])
        assert out.summary["rate_limited"] == 0  # the server never had to say 429
        log = sb.requests_log()
        bursts = window_max(log, burst_s, lambda e: f"{e['method']} {e['path']}")
        average = window_max(log, average_s, lambda e: "all")
        assert max(bursts.values()) <= 5 and average["all"] <= 20
        # The sandbox's own windows (counted at arrival) agree, and the budget was used fully.
        server = sb.windows_max()
        assert all(w["max"] <= w["limit"] for w in server["burst"].values())
        assert server["average"]["uncacheable"]["max"] == 20
        assert server["burst"]["POST /api/customer_payment_sources"]["max"] == 5
        stats = sb.stats()
        assert stats["records"]["customer_payment_sources"] == 70 and stats["duplicates"]["count"] == 0


def test_a_thousand_rows(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=1000)
    with sandbox_thread(customers=info.customers, burst_limit=5000, average_limit=50000) as sb:
        out = run_import(settings_for(sb, tmp_path, concurrency=16), [tmp_path / "in.csv"], tmp_path / "rep")
        assert statuses(tmp_path / "rep") == {"created": 1000}
        assert created_count(sb) == 1000 and duplicates(sb) == 0
        s = out.summary
        assert s["posts"] == 1000 and s["retries"] == 0
        assert s["lookups_per_100_rows"] <= 5.0  # at most one look-up per 20 rows on a first run
