"""One run per journal at a time: an OS advisory lock on `<journal>.lock`.

Two `importer run` processes on one journal both read the same open rows and both send them
(measured before this lock: 827 wallet entries for 600 pairings). `journal_lock` makes the second
one stop before it reads or writes the journal or sends anything.

Why `flock` on a file beside the journal, and not a row in the journal: the kernel releases the
lock when the holding process ends, however it ends, so a `kill -9` never leaves a lock that
must be cleaned by hand, and there is no "is that pid still alive?" guess (pids are reused, and
another host's pids mean nothing here). The holder writes who it is into the file (pid, host,
start time, command; never a secret), so a refusal names it. The file itself stays: its
presence means nothing, only the lock on it does.

A lock cannot see another machine: two hosts with two journals are not coordinated
(docs/exactly-once.md, "Two hosts").
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from importer.clock import Clock
from importer.errors import ImporterError

# How often a waiting run tries the lock again: short enough that a scheduled job starts soon
# after the holder ends, long enough to cost nothing.
POLL_S = 0.2
_COMMAND_MAX = 300


class JournalBusy(ImporterError):
    """Another process holds the journal's lock (exit 2: nothing was read, written or sent)."""


def lock_path_for(journal_path: Path) -> Path:
    return journal_path.with_name(journal_path.name + ".lock")


def _holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 65536).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(info: dict[str, Any]) -> str:
    if not info.get("pid"):
        # The holder had not written its line yet, or it just ended and cleared it.
        return "another process (it has not said who it is yet)"
    return (
        f"pid {info.get('pid')} on host {info.get('host', '?')}, started {info.get('started_at', '?')}, "
        f"command `{info.get('command', '?')}`"
    )


def busy_message(journal_path: Path, info: dict[str, Any], waited_s: float) -> str:
    waited = f" after waiting {waited_s:g} s" if waited_s > 0 else ""
    return (
        f"journal {journal_path} is in use{waited} by {describe_holder(info)}; nothing was sent. "
        "Two runs on one journal would send the same rows twice: wait for that run to finish, "
        "or pass --wait SECONDS (config journal.wait_s) to wait for it"
    )


@contextlib.contextmanager
def journal_lock(
    journal_path: Path,
    *,
    command: str,
    wait_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Clock = time.monotonic,
) -> Iterator[None]:
    """Hold the journal's lock for the `with` block, or raise `JournalBusy` (exit 2).

    `wait_s` > 0: poll every `POLL_S` for up to that long before giving up. `command` is shown
    to a refused run; pass something that says what this process is doing, never a secret.
    """
    journal_path = Path(journal_path)
    if str(journal_path) == ":memory:":
        yield  # an in-memory journal cannot be shared
        return
    lock_path = lock_path_for(journal_path)
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise JournalBusy(
            f"journal lock {lock_path} cannot be created ({exc.strerror or exc}); "
            "set journal.path in the config to a writable location"
        ) from None
    try:
        _acquire(fd, journal_path, wait_s, sleep, clock)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "command": command[:_COMMAND_MAX],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode("utf-8"), 0)
        try:
            yield
        finally:
            # Clear the line before the lock goes: a refused run must never name a holder that left.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _acquire(
    fd: int, journal_path: Path, wait_s: float, sleep: Callable[[float], None], clock: Clock
) -> None:
    started = clock()
    # Bounded in count as well as time: a clock that never moves cannot make this spin forever.
    for _ in range(int(max(wait_s, 0.0) / POLL_S) + 2):
        with contextlib.suppress(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        left = wait_s - (clock() - started)
        if left <= 0:
            break
        sleep(min(POLL_S, left))
    raise JournalBusy(busy_message(journal_path, _holder(fd), wait_s))
