"""End to end against the sandbox with faults: errors, lost answers, 429 storms, expired tokens,
bad credentials. Assertions are on counts and states, never on seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from run_helpers import (
    created_count,
    duplicates,
    results,
    run_import,
    sandbox_thread,
    settings_for,
    statuses,
    when,
)
from structlog.testing import capture_logs

from importer.auth import INVALID_CLIENT
from importer.cli import main
from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_SEED


def test_5xx_and_timeouts_are_retried_without_duplicates(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=40)
    faults = {"error_5xx": 0.3, "error_5xx_scope": "api", "slow_response": 0.15, "slow_response_s": 1.0}
    with sandbox_thread(customers=info.customers, **faults) as sb:
        settings = settings_for(sb, tmp_path, **{"retry.max_attempts": 12, "timeouts.request_s": 0.3})
        out = run_import(settings, [tmp_path / "in.csv"], tmp_path / "rep")
        assert statuses(tmp_path / "rep") == {"created": 40}
        assert created_count(sb) == 40 and duplicates(sb) == 0
        injected = sb.stats()["faults"]
        assert injected.get("error_5xx", 0) > 0 and injected.get("slow_response", 0) > 0
        assert out.summary["retries"] >= injected["error_5xx"]
        rows = results(tmp_path / "rep")
        assert max(int(r["attempts"]) for r in rows) > 1


def test_commit_then_fail_never_duplicates(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=40)
    with sandbox_thread(customers=info.customers, commit_then_fail=0.5, commit_then_fail_mode="mixed") as sb:
        settings = settings_for(sb, tmp_path, **{"retry.max_attempts": 12})
        out = run_import(settings, [tmp_path / "in.csv"], tmp_path / "rep")
        assert statuses(tmp_path / "rep") == {"created": 40}
        stats = sb.stats()
        assert stats["duplicates"]["count"] == 0 and created_count(sb) == 40
        failures = stats["faults"]["commit_then_fail"]
        assert failures > 5
        # Every lost answer was settled by a look-up, none by sending again.
        assert out.summary["ambiguous_outcomes"] == failures
        assert out.summary["posts"] == 40
        ids = [r["customer_payment_source_id"] for r in results(tmp_path / "rep")]
        assert sorted(ids) == sorted(r["id"] for r in sb.records())


def test_a_429_storm_pauses_everyone_together(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=60)
    concurrency, storm_s = 4, 1.5
    # Windows wide open, so every 429 comes from the storm.
    with sandbox_thread(customers=info.customers, burst_limit=1000, average_limit=10000) as sb:
        pause_s = sb.settings.burst_window  # no Retry-After: the client pauses one burst window
        settings = settings_for(sb, tmp_path, concurrency=concurrency)
        with (
            capture_logs() as logs,
            when(lambda: created_count(sb) >= 10, lambda: sb.set_faults(storm_s=storm_s)),
        ):
            out = run_import(settings, [tmp_path / "in.csv"], tmp_path / "rep")
        assert statuses(tmp_path / "rep") == {"created": 60}  # no row lost
        assert duplicates(sb) == 0
        storm = [e for e in sb.requests_log() if e["fault"] == "storm"]
        # Requests that reached the sandbox during the storm: those in flight when it began,
        # then one probe per pause. Not one per worker per pause.
        bound = concurrency + 1 + int(storm_s / pause_s) + 2
        assert 1 <= len(storm) <= bound
        assert out.summary["rate_limited"] == len(storm)
        events = [e["event"] for e in logs]
        assert 1 <= events.count("run.paused") <= 3 and events.count("run.resumed") == events.count(
            "run.paused"
        )
        assert out.summary["paused_s"] > 0


def test_token_expiring_mid_run_fetches_exactly_one_new_token(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=60)
    with sandbox_thread(customers=info.customers) as sb:
        settings = settings_for(sb, tmp_path)
        with when(lambda: created_count(sb) >= 10, sb.expire_tokens):
            out = run_import(settings, [tmp_path / "in.csv"], tmp_path / "rep")
        assert statuses(tmp_path / "rep") == {"created": 60}
        assert out.summary["tokens_fetched"] == 2
        stats = sb.stats()
        assert stats["tokens_issued"] == 2
        # Several workers were refused at once; one new token served them all.
        assert stats["requests"]["POST /api/customer_payment_sources"].get("401", 0) >= 2
        assert duplicates(sb) == 0


def test_invalid_credentials_abort_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("CL_BASE_URL", "CL_AUTH_URL", "CL_CLIENT_ID", "CL_CLIENT_SECRET", "CL_SCOPE"):
        monkeypatch.delenv(var, raising=False)
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=12)
    with sandbox_thread(customers=info.customers) as sb:
        monkeypatch.setenv("CL_CLIENT_SECRET", "wrong-secret-value")
        config = tmp_path / "config.yaml"
        config.write_text(
            f"commercelayer:\n  base_url: {sb.base_url}\n  auth_url: {sb.auth_url}\n"
            f"  client_id: {sb.client_id}\n  client_secret: ${{CL_CLIENT_SECRET}}\n"
            f"journal:\n  path: {tmp_path / 'journal.sqlite'}\n",
            encoding="utf-8",
        )
        os.chmod(config, 0o600)
        code = main(
            [
                "run",
                str(tmp_path / "in.csv"),
                "-c",
                str(config),
                "--report-dir",
                str(tmp_path / "rep"),
                "--log-format",
                "json",
            ]
        )
        assert code == 3
        captured = capsys.readouterr()
        # JSON mode: the closing message is the run.message event, not a plain line.
        assert f'"message": "{INVALID_CLIENT}' in captured.err
        assert "importer: " not in captured.err
        assert "wrong-secret-value" not in captured.out + captured.err
        rows = results(tmp_path / "rep")
        assert len(rows) == 12 and {r["status"] for r in rows} == {"not_attempted"}
        stats = sb.stats()
        assert stats["requests"].get("POST /oauth/token") == {"401": 1}  # asked once, not retried
        assert not any(k.startswith(("GET /api", "POST /api")) for k in stats["requests"])
