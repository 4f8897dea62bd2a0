"""Issue 11, performance: the streamed input is read in a child process (bulk/stream.py).

What the child does must reach the run as a thread's work did: its log lines, the loader's
file statistics, an input error (exit 2, the file named), and a stop. A child whose parent is
killed stops writing into the journal.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
from pathlib import Path

import pytest
from e2e_helpers import (
    SandboxProcess,
    api_of,
    cli,
    customers_for,
    importer_proc,
    imports_config,
    journal_query,
    run_argv,
    summary,
    wait_for,
    words,
    write_config,
    write_id_pairs,
)
from run_helpers import created_count, duplicates, sandbox_thread, statuses

from importer.errors import SourceError


def _config(tmp_path: Path, sb: object, **imports: object) -> Path:
    return write_config(
        tmp_path / "config.yaml",
        api_of(sb),
        tmp_path / "journal.sqlite",
        strategy="imports",
        imports={"chunk_size": 500, "poll_interval_s": 0.05, "sizing": "fixed", **imports},
    )


def _events(err: str, name: str) -> list[dict[str, object]]:
    found = []
    for line in err.splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def test_the_childs_log_lines_and_file_statistics_reach_the_run(tmp_path: Path) -> None:
    rows = 1500
    write_id_pairs(tmp_path / "in.csv", rows)
    lines = (tmp_path / "in.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    # Three blank rows inside the data: only the reader (in the child) counts them.
    (tmp_path / "in.csv").write_text("".join([*lines[:700], ",,\n" * 3, *lines[700:]]), encoding="utf-8")
    with sandbox_thread(customers=customers_for(rows), import_rows_per_s=20000.0) as sb:
        config = _config(tmp_path, sb)
        done = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rep"))
        assert done.code == 0, done.err[-3000:]
        assert created_count(sb) == rows and duplicates(sb) == 0
    assert statuses(tmp_path / "rep") == {"created": rows}
    # Logged by the loader in the child, written by the parent to its own stderr.
    (file_read,) = _events(done.err, "input.file_read")
    assert file_read["rows"] == rows and file_read["blank_rows"] == 3
    # The loader's state, learnt in the child, is the parent's for the summary.
    s = summary(tmp_path / "rep")
    assert s["rows_skipped_blank"] == 3
    assert [f["rows"] for f in s["files"]] == [rows]
    (read,) = _events(done.err, "input.read")
    assert read["rows"] == rows and read["rows_skipped_blank"] == 3


def test_an_unreadable_second_file_found_by_the_child_exits_2_naming_it(tmp_path: Path) -> None:
    rows = 1200
    write_id_pairs(tmp_path / "a.csv", rows)
    (tmp_path / "b.xlsx").write_bytes(b"not a workbook at all")
    with sandbox_thread(customers=customers_for(rows), import_rows_per_s=20000.0) as sb:
        config = _config(tmp_path, sb)
        done = cli(run_argv([tmp_path / "a.csv", tmp_path / "b.xlsx"], config, tmp_path / "rep"))
        assert done.code == 2, done.err[-3000:]
        assert "b.xlsx" in done.err
        assert "Traceback" not in done.err
        # Imports posted before the error are reconciled: nothing is created twice.
        assert duplicates(sb) == 0


def test_source_error_survives_the_trip_from_the_child() -> None:
    error = pickle.loads(pickle.dumps(SourceError("in/b.xlsx", "is not a workbook")))
    assert isinstance(error, SourceError)
    assert str(error) == "in/b.xlsx: is not a workbook"
    assert error.path == "in/b.xlsx" and error.exit_code == 2


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to find the child")
def test_kill_9_while_reading_ends_the_reading_child_and_the_rerun_imports_every_row(
    tmp_path: Path,
) -> None:
    rows = 40_000
    write_id_pairs(tmp_path / "in.csv", rows)
    journal = tmp_path / "journal.sqlite"
    # Slow imports: the run is still reading (and posting) when it is killed.
    args = words(f"--time-scale 0.05 --set import_rows_per_s=200 --customers {customers_for(rows)}")
    with SandboxProcess(*args, log_dir=tmp_path) as sb:
        config = imports_config(sb, tmp_path, journal, imports={"chunk_size": 500, "sizing": "fixed"})
        argv = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep")
        with importer_proc(argv, tmp_path, "first") as first:

            def reading() -> bool:
                read = journal_query(journal, "SELECT COUNT(*) FROM rows")
                done = journal_query(journal, "SELECT intake_done FROM runs")
                return bool(read and read[0][0] > 0 and done and done[0][0] == 0)

            wait_for(lambda: reading() or first.proc.poll() is not None, 60, "the first rows read")
            assert first.proc.poll() is None, first.err[-2000:]
            children = _children(first.proc.pid)
            assert children, "no reading child process"
            first.signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
            wait_for(lambda: all(_gone(c) for c in children), 10, "the reading child to end")
        read = journal_query(journal, "SELECT COUNT(*) FROM rows")
        assert read is not None and read[0][0] < rows  # it stopped before the end of the file
        runs = journal_query(journal, "SELECT intake_done FROM runs")
        assert runs == [(0,)]

        sb.set_faults(import_rows_per_s=20000)
        again = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rep"))
        assert again.code == 0, again.err[-3000:]
        assert (
            summary(tmp_path / "rep")["counts"]["created"]
            + summary(tmp_path / "rep")["counts"].get("already_exists", 0)
            == rows
        )
        assert sb.stats()["duplicates"]["count"] == 0
