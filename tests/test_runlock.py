"""One run per journal: the lock in-process, and two real `importer run` processes on one journal
(the second refused with exit 2 and the holder's name, `kill -9` of the holder leaving no stale
lock, `--wait` letting the second proceed). Counts and states only, never seconds."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
from e2e_helpers import (
    SandboxProcess,
    api_of,
    customers_for,
    importer_proc,
    journal_query,
    pairing_states,
    quiet,
    rate_limit_for,
    record_key,
    results,
    run_argv,
    status_counts,
    wait_for,
    words,
    write_config,
    write_id_pairs,
)

from importer.errors import EXIT_USAGE
from importer.runlock import POLL_S, JournalBusy, journal_lock, lock_path_for


def test_a_second_holder_is_refused_with_the_holders_name(tmp_path: Path) -> None:
    journal = tmp_path / "j" / "journal.sqlite"
    with journal_lock(journal, command="importer run first.csv"):
        info = json.loads(lock_path_for(journal).read_text(encoding="utf-8"))
        assert info["pid"] == os.getpid() and info["command"] == "importer run first.csv"
        with pytest.raises(JournalBusy) as refused, journal_lock(journal, command="importer run again"):
            pytest.fail("a second holder got the lock")
    message = str(refused.value)
    assert refused.value.exit_code == EXIT_USAGE
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in message
    assert "command `importer run first.csv`" in message
    assert "nothing was sent" in message and "--wait SECONDS" in message
    # Released on exit: the next holder gets it, and the holder's line is gone.
    with journal_lock(journal, command="importer run next"):
        pass
    assert lock_path_for(journal).read_text(encoding="utf-8") == ""


def test_waiting_gets_the_lock_once_the_holder_lets_go(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    holder = journal_lock(journal, command="importer run first.csv")
    holder.__enter__()
    naps: list[float] = []

    def sleep(seconds: float) -> None:  # the holder ends during the second run's first nap
        naps.append(seconds)
        if len(naps) == 2:
            holder.__exit__(None, None, None)

    with journal_lock(journal, command="importer run second.csv", wait_s=60, sleep=sleep):
        info = json.loads(lock_path_for(journal).read_text(encoding="utf-8"))
        assert info["command"] == "importer run second.csv"
    assert len(naps) == 2 and all(0 < n <= POLL_S for n in naps)


def test_waiting_gives_up_after_wait_s(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    now = [0.0]

    def sleep(seconds: float) -> None:  # a fake clock: the wait is counted, not slept
        now[0] += seconds

    with (
        journal_lock(journal, command="importer run first.csv"),
        pytest.raises(JournalBusy, match=r"in use after waiting 3 s by pid"),
        journal_lock(journal, command="x", wait_s=3, sleep=sleep, clock=lambda: now[0]),
    ):
        pytest.fail("got the lock")
    assert now[0] == pytest.approx(3.0)


def test_a_memory_journal_needs_no_lock() -> None:
    with journal_lock(Path(":memory:"), command="a"), journal_lock(Path(":memory:"), command="b"):
        pass


# -- real processes ---------------------------------------------------------------------------------

ROWS = 60


def _setup(tmp_path: Path, sb: SandboxProcess) -> tuple[Path, Path, list[str]]:
    keys = write_id_pairs(tmp_path / "in.csv", ROWS)
    journal = tmp_path / "journal.sqlite"
    config = write_config(
        tmp_path / "config.yaml", api_of(sb), journal, concurrency=4, rate_limit=rate_limit_for(0.05, 8, 40)
    )
    return journal, config, keys


def _sandbox_args() -> list[str]:
    return [
        *words("--time-scale 0.05 --set burst_limit=8 --set average_limit=40 --customers"),
        str(customers_for(ROWS)),
    ]


def error_messages(stderr: str) -> list[str]:
    """The one-line messages a run ended with: `run.error`/`run.message` events of the JSON log
    (in JSON mode stderr holds nothing else), or `importer: …` lines on a console."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("importer: "):
            out.append(line)
        elif line.startswith("{"):
            event = json.loads(line)
            if event.get("event") in ("run.error", "run.message"):
                out.append(str(event.get("error") or event.get("message")))
    return out


def _holding(journal: Path, pid: int) -> bool:
    text = lock_path_for(journal).read_text(encoding="utf-8") if lock_path_for(journal).exists() else ""
    return bool(text) and json.loads(text).get("pid") == pid


def _one_record_per_pairing(sb: SandboxProcess, keys: list[str]) -> None:
    records = sb.records()
    assert sb.stats()["duplicates"]["count"] == 0
    assert sorted(record_key(r) for r in records) == sorted(keys)


@pytest.mark.slow
def test_a_second_run_on_a_busy_journal_sends_nothing_and_exits_2(tmp_path: Path) -> None:
    with SandboxProcess(*_sandbox_args()) as sb:
        journal, config, keys = _setup(tmp_path, sb)
        with importer_proc(
            run_argv([tmp_path / "in.csv"], config, tmp_path / "rep1"), tmp_path, "first"
        ) as first:
            wait_for(
                lambda: pairing_states(journal).get("created", 0) >= 5 or first.proc.poll() is not None,
                60,
                "the first run to be creating",
            )
            assert first.proc.poll() is None, first.err[-2000:]
            requests_before = len(sb.requests_log())
            with importer_proc(
                run_argv([tmp_path / "in.csv"], config, tmp_path / "rep2"), tmp_path, "second"
            ) as second:
                assert second.wait(60) == EXIT_USAGE
            assert first.wait(120) == 0, first.err[-2000:]
        lines = error_messages(second.err)
        assert len(lines) == 1, second.err[-2000:]
        assert (
            f"journal {journal} is in use by pid {first.proc.pid} on host {socket.gethostname()}" in lines[0]
        )
        assert f"command `importer run {tmp_path / 'in.csv'}`" in lines[0]
        assert "--wait SECONDS" in lines[0]
        assert not (tmp_path / "rep2").exists()  # not even an empty report folder
        # The refused run took no token and sent nothing: only the first run's requests follow.
        assert all(e["path"] != "/oauth/token" for e in sb.requests_log()[requests_before:])
        assert status_counts(results(tmp_path / "rep1")) == {"created": ROWS}
        assert journal_query(journal, "SELECT COUNT(*) FROM runs") == [(1,)]
        _one_record_per_pairing(sb, keys)


@pytest.mark.slow
def test_kill_9_of_the_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    with SandboxProcess(*_sandbox_args()) as sb:
        journal, config, keys = _setup(tmp_path, sb)
        argv = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep")
        with importer_proc(argv, tmp_path, "first") as first:
            wait_for(
                lambda: pairing_states(journal).get("created", 0) >= 5 or first.proc.poll() is not None,
                60,
                "the first run to be creating",
            )
            assert first.proc.poll() is None and _holding(journal, first.proc.pid), first.err[-2000:]
            first.signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        quiet(sb)
        # The dead holder's line is still in the file; the lock is not.
        assert _holding(journal, first.proc.pid)
        with importer_proc(argv, tmp_path, "second") as second:
            assert second.wait(120) == 0, second.err[-3000:]
        assert "is in use" not in second.err
        assert status_counts(results(tmp_path / "rep")) == {"created": ROWS}
        _one_record_per_pairing(sb, keys)


@pytest.mark.slow
def test_wait_lets_a_second_run_proceed_once_the_first_ends(tmp_path: Path) -> None:
    with SandboxProcess(*_sandbox_args()) as sb:
        journal, config, keys = _setup(tmp_path, sb)
        with importer_proc(
            run_argv([tmp_path / "in.csv"], config, tmp_path / "rep1"), tmp_path, "first"
        ) as first:
            wait_for(
                lambda: _holding(journal, first.proc.pid) or first.proc.poll() is not None, 60, "the lock"
            )
            assert first.proc.poll() is None, first.err[-2000:]
            argv2 = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep2", "--wait", "300")
            with importer_proc(argv2, tmp_path, "second") as second:
                assert first.wait(120) == 0, first.err[-2000:]
                assert second.wait(120) == 0, second.err[-2000:]
        assert status_counts(results(tmp_path / "rep1")) == {"created": ROWS}
        # The second run started after the first finished: everything was in the journal.
        assert status_counts(results(tmp_path / "rep2")) == {"already_exists": ROWS}
        assert journal_query(journal, "SELECT state FROM runs ORDER BY started_at") == [
            ("finished",),
            ("finished",),
        ]
        _one_record_per_pairing(sb, keys)
