"""--fail-fast over real HTTP: it stops at the first failure, names that row in every
not_attempted row, and a failure found by a look-up does not keep earlier rows from being sent."""

from __future__ import annotations

from pathlib import Path

from run_helpers import created_count, results, run_import, sandbox_thread, settings_for, write_csv

from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED

HEADER = ["customer_id", "customer_email", "payment_source_type", "payment_source_id"]


def _rows(n: int) -> list[list[str]]:
    data = generate(DEMO_SEED, 20)
    return [[s.customer_id, "", s.type, s.id] for s in data.sources[:n]]


def test_a_post_failure_stops_the_run_and_every_not_attempted_row_names_it(tmp_path: Path) -> None:
    rows = _rows(30)
    rows[3] = [rows[0][0], "", "stripe_payments", "NoSuchId00"]  # row 5: the API refuses it (422)
    source = write_csv(tmp_path / "in.csv", HEADER, rows)
    with sandbox_thread() as sb:
        out = run_import(
            settings_for(sb, tmp_path, concurrency=1), [source], tmp_path / "rep", fail_fast=True
        )
        got = results(tmp_path / "rep")
        assert [r["status"] for r in got[:5]] == ["created"] * 3 + ["failed", "not_attempted"]
        assert created_count(sb) == 3
    not_attempted = [r for r in got if r["status"] == "not_attempted"]
    assert len(not_attempted) == 26
    expected = f"not sent: --fail-fast stopped the run at the first failure, {source} row 5"
    assert {r["error_detail"] for r in not_attempted} == {expected}
    assert out.summary["fail_fast_stopped_at"] == {"file": str(source), "sheet": "", "row": 5}
    assert out.exit_code == 1


def test_a_look_up_failure_does_not_stop_earlier_rows(tmp_path: Path) -> None:
    """Row 12's e-mail is unknown: the look-up finds that before any POST of its chunk. The ten
    rows above it are still sent (as a one-by-one import would have), nothing below it is."""
    rows = _rows(30)
    rows[10] = ["", "nobody@example.com", rows[10][2], rows[10][3]]  # row 12
    source = write_csv(tmp_path / "in.csv", HEADER, rows)
    with sandbox_thread() as sb:
        settings = settings_for(sb, tmp_path, concurrency=4)
        out = run_import(settings, [source], tmp_path / "rep", fail_fast=True)
        got = results(tmp_path / "rep")
        assert [r["status"] for r in got[:10]] == ["created"] * 10
        assert got[10]["status"] == "failed" and got[10]["error_code"] == "CUSTOMER_NOT_FOUND"
        assert {r["status"] for r in got[11:]} == {"not_attempted"}
        assert created_count(sb) == 10
    expected = f"not sent: --fail-fast stopped the run at the first failure, {source} row 12"
    assert {r["error_detail"] for r in got[11:]} == {expected}
    assert out.summary["fail_fast_stopped_at"]["row"] == 12


def test_without_fail_fast_nothing_is_named(tmp_path: Path) -> None:
    rows = _rows(6)
    rows[1] = ["", "nobody@example.com", rows[1][2], rows[1][3]]
    source = write_csv(tmp_path / "in.csv", HEADER, rows)
    with sandbox_thread() as sb:
        out = run_import(settings_for(sb, tmp_path), [source], tmp_path / "rep")
        assert created_count(sb) == 5
    assert "fail_fast_stopped_at" not in out.summary
    assert [r["status"] for r in results(tmp_path / "rep")].count("created") == 5
