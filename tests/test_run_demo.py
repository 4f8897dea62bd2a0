"""`importer demo` and what a person sees while a run goes (progress bar, events)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from run_helpers import results, run_import, sandbox_thread, settings_for
from structlog.testing import capture_logs

from importer.demo import run_demo
from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_CUSTOMERS, DEMO_SEED


def test_demo_imports_into_its_own_sandbox(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Fewer rows than one burst window allows, so the real `test` limits cost no waiting.
    (tmp_path / "samples").mkdir()
    write_sample(tmp_path / "samples" / "pairs.csv", DEMO_SEED, DEMO_CUSTOMERS, rows=12)
    args = argparse.Namespace(inputs=[str(tmp_path / "samples")], report_dir=str(tmp_path / "rep"), quiet=0)
    assert run_demo(args) == 0
    assert {r["status"] for r in results(tmp_path / "rep")} == {"created"}
    assert len(results(tmp_path / "rep")) == 12
    assert "created" in capsys.readouterr().out
    # Each demo starts from scratch: the same result again, not already_exists.
    assert run_demo(args) == 0
    assert {r["status"] for r in results(tmp_path / "rep")} == {"created"}


def test_progress_bar_and_events(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=30)
    with open(tmp_path / "in.csv", "a", encoding="utf-8") as fh:
        fh.write("AAAAAAAAAA,,stripe_payments,NoSuchId00,bad-row\n")  # unknown customer: a 422
    with sandbox_thread(customers=info.customers) as sb, capture_logs() as logs:
        run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep", progress=True)
    failed = [e for e in logs if e["event"] == "row.failed"]
    assert len(failed) == 1
    # Named as a person finds it: the file and the row number the spreadsheet shows.
    assert failed[0]["file"] == str(tmp_path / "in.csv") and failed[0]["sheet"] == ""
    assert failed[0]["row"] == 32 and "seq" not in failed[0]
    assert failed[0]["error_code"] == "VALIDATION_ERROR"
    assert failed[0]["http_status"] == 422 and "customer - must exist" in failed[0]["detail"]
