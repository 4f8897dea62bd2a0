"""Issue 11: `kill -9` of `python -m importer run --strategy imports` while imports are in flight,
then the same command again: it polls the imports it had started and never posts them again."""

from __future__ import annotations

import json
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from e2e_helpers import (
    SandboxProcess,
    cli,
    customers_for,
    importer_proc,
    imports_config,
    journal_query,
    quiet,
    record_key,
    results,
    run_argv,
    summary,
    wait_for,
    words,
    write_id_pairs,
)


def _running_imports(journal: Path) -> int:
    found = journal_query(journal, "SELECT COUNT(*) FROM bulk_imports WHERE import_id IS NOT NULL")
    return int(found[0][0]) if found else 0


def _in_flight_shown(log: str) -> bool:
    """An `imports.progress` event showing imports in flight, rows processed and reconciled."""
    for line in log.splitlines():
        if '"imports.progress"' in line:
            event = json.loads(line)
            if event["imports_in_flight"] >= 1 and {"rows_processed", "rows_reconciled"} <= set(event):
                return True
    return False


@pytest.mark.slow
def test_kill_9_with_imports_in_flight_then_the_resume_polls_them_and_posts_none_again(
    tmp_path: Path,
) -> None:
    rows = 200
    keys = write_id_pairs(tmp_path / "in.csv", rows)
    journal = tmp_path / "journal.sqlite"
    args = words(f"--time-scale 0.05 --set import_rows_per_s=20 --customers {customers_for(rows)}")
    with SandboxProcess(*args, log_dir=tmp_path) as sb:
        config = imports_config(sb, tmp_path, journal, imports={"chunk_size": 50})
        argv = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep")
        with importer_proc(argv, tmp_path, "first") as first:
            wait_for(
                lambda: (
                    (_running_imports(journal) >= 2 and _in_flight_shown(first.err))
                    or first.proc.poll() is not None
                ),
                60,
                "two imports posted and the progress showing them",
            )
            assert first.proc.poll() is None, f"the run ended before the kill: {first.err[-2000:]}"
            first.signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        quiet(sb)
        before = sb.records("imports")
        assert len(before) >= 2
        assert any(i["status"] in ("pending", "in_progress") for i in before), "no import was in flight"
        journaled = journal_query(journal, "SELECT reference, import_id FROM bulk_imports")
        assert journaled is not None
        posted = {ref: id_ for ref, id_ in journaled if id_ is not None}
        assert {i["reference"]: i["id"] for i in before if i["reference"] in posted} == posted

        # As if the kill had also cut off the answer to the first POST: only its reference is known.
        first_ref = min(posted)
        with sqlite3.connect(journal) as conn:
            conn.execute(
                "UPDATE bulk_imports SET import_id=NULL, state='posting' WHERE reference=?", (first_ref,)
            )
        conn.close()

        sb.set_faults(import_rows_per_s=5000)
        again = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rep"))
        assert again.code == 0, again.err[-3000:]

        after = sb.records("imports")
        references = [i["reference"] for i in after]
        assert len(references) == len(set(references)), "an import was posted twice"
        assert {i["id"] for i in before} <= {i["id"] for i in after}
        found_again = journal_query(
            journal, "SELECT import_id FROM bulk_imports WHERE reference=?", (first_ref,)
        )
        assert found_again == [(posted[first_ref],)]  # looked up by its reference
        assert sum(i["inputs_size"] for i in after) == rows  # no row went in two imports
        s = summary(tmp_path / "rep")
        assert s["imports"]["resumed"] >= 2
        assert s["imports"]["posted"] == len(after) - len(before)
        assert Counter(r["status"] for r in results(tmp_path / "rep")) == {"created": rows}
        records = sb.records()
        assert sorted(record_key(r) for r in records) == sorted(keys)
        assert sb.stats()["duplicates"]["count"] == 0
        runs = journal_query(journal, "SELECT run_id, state FROM runs")
        assert runs is not None and len(runs) == 1 and runs[0][1] == "finished"


@pytest.mark.slow
def test_sigterm_with_imports_in_flight_exits_130_and_the_rerun_finishes_them(tmp_path: Path) -> None:
    rows = 200
    keys = write_id_pairs(tmp_path / "in.csv", rows)
    journal = tmp_path / "journal.sqlite"
    args = words(f"--time-scale 0.05 --set import_rows_per_s=20 --customers {customers_for(rows)}")
    with SandboxProcess(*args, log_dir=tmp_path) as sb:
        config = imports_config(
            sb, tmp_path, journal, imports={"chunk_size": 50}, timeouts={"shutdown_grace_s": 0.2}
        )
        argv = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep")
        with importer_proc(argv, tmp_path, "first") as first:
            wait_for(
                lambda: _running_imports(journal) >= 2 or first.proc.poll() is not None,
                60,
                "two imports posted",
            )
            first.signal(signal.SIGTERM)
            assert first.wait(30) == 130, first.err[-2000:]
        stopped = Counter(r["status"] for r in results(tmp_path / "rep"))
        assert stopped["not_attempted"] > 0  # rows of imports still processing on the server
        before = sb.records("imports")
        sb.set_faults(import_rows_per_s=5000)
        again = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rep"))
        assert again.code == 0, again.err[-3000:]
        after = sb.records("imports")
        references = [i["reference"] for i in after]
        assert len(references) == len(set(references)) and sum(i["inputs_size"] for i in after) == rows
        assert {i["id"] for i in before} <= {i["id"] for i in after}
        assert Counter(r["status"] for r in results(tmp_path / "rep")) == {"created": rows}
        assert sorted(record_key(r) for r in sb.records()) == sorted(keys)
        assert sb.stats()["duplicates"]["count"] == 0
