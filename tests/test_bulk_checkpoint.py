"""bulk/checkpoint.py: while imports run, the loop's commits never fold the WAL themselves; a
thread does, and the usual setting is back afterwards."""

from __future__ import annotations

import time
from pathlib import Path

from importer.bulk.checkpoint import DEFAULT_AUTOCHECKPOINT, Checkpointer
from importer.journal import Journal

PAGE = 4096


def _autocheckpoint(journal: Journal) -> int:
    return int(journal.connection.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def _wal_pages(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size // PAGE if wal.exists() else 0


def _journal(path: Path) -> Journal:
    journal = Journal.open(path)
    journal.start_run("r1", command="run", target="t", inputs_fingerprint="f")
    return journal


def _write(journal: Journal, parts: int) -> None:
    """`parts` commits of ≈ 650 WAL pages each (600 rows of 2 kB)."""
    raw = "{}" + "x" * 2000
    for part in range(parts):
        rows = [
            (part * 600 + i, "in.csv", "", i + 2, raw, f"k{part}-{i}", "{}", "pending", None, None)
            for i in range(600)
        ]
        journal.add_rows("r1", rows)


def test_the_loop_connection_does_no_checkpoint_and_the_thread_does(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = _journal(path)
    with Checkpointer(journal, every_s=3600) as checkpointer:  # the thread waits: only the loop writes
        assert _autocheckpoint(journal) == 0
        _write(journal, 4)
        # No commit folded the log, so none could start it again from the top: it holds all four.
        assert _wal_pages(path) > 4 * 600
    # On the way out the thread checkpoints once, and the setting is back.
    assert checkpointer.checkpoints == 1
    assert _autocheckpoint(journal) == DEFAULT_AUTOCHECKPOINT
    assert journal.count_rows("r1") == {"pending": 2400}
    journal.close()


def test_the_thread_empties_the_log_file_when_no_one_is_using_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = _journal(path)
    with Checkpointer(journal, every_s=0.01) as checkpointer:
        _write(journal, 4)
        # Writes over: within a few turns a TRUNCATE turn finds no reader and empties the file
        # (a PASSIVE checkpoint would leave all of its pages there).
        deadline = time.monotonic() + 10.0
        while _wal_pages(path) > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _wal_pages(path) == 0
        assert checkpointer.checkpoints > 0
    assert journal.count_rows("r1") == {"pending": 2400}
    journal.close()


def test_without_it_a_commit_folds_the_log(tmp_path: Path) -> None:
    # The other side of the test above: with the default threshold a commit checkpoints, and
    # the next one writes the log again from its start, so it never holds all four.
    path = tmp_path / "journal.sqlite"
    journal = _journal(path)
    _write(journal, 4)
    assert _wal_pages(path) < 3 * 600
    journal.close()


def test_a_memory_journal_is_left_alone() -> None:
    journal = Journal.open(":memory:")
    with Checkpointer(journal) as checkpointer:
        pass
    assert checkpointer.checkpoints == 0
    journal.close()
