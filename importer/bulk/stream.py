"""Streaming intake for the imports strategy: imports start while the file is still being read.

`IntakeFeed` runs the ordinary intake (intake.py: read, validate, de-duplicate, write to the
journal) in a child PROCESS with a journal connection of its own, in small batches, while the
event loop checks and posts chunks as soon as `imports.chunk_size` rows are ready. The producer
reads the committed rows from the journal and waits for more until the feed is done.

Why a process and not a thread: reading and checking the file costs ≈ 0.1 ms a row, as much
CPU as everything the event loop does for the same rows (pre-check, posting, polling,
read-back, journal writes). On a thread the two share one GIL and one core, and the import
slots wait for the event loop; in a child the file is read on a core of its own. The child is
forked (no second start-up) and talks to the parent over one pipe: its log lines (written by
the parent to its own stderr, so they land where a thread's would), then the counts and what
the loader learnt while reading (the file infos and blank rows that the summary reports), or
the error that stopped it (re-raised by `finish()`: the same exit-2 message as REST). Where
`fork` does not exist the feed falls back to a thread.

What changes against REST (README "Strategies"): the invalid-row check (`max_invalid_ratio`)
is made before each import is posted, over the rows read so far, instead of once before
anything is sent; once over the ratio, no further import is posted. An input error found late
(an unreadable second file) stops further imports; those already posted are reconciled.

A stop (Ctrl-C, SIGTERM) does not cut the reading short: the child ignores both signals and
the rest of the file is still read into the journal, so the run stays resumable and the next
run polls the imports it had started. A child whose parent is gone (kill -9) stops at its next
batch instead of writing into a journal that a new run may be using.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from importer.intake import IntakeCounts, intake
from importer.journal import Journal
from importer.models import SourceRow
from importer.validator import Defaults

BATCH = 2000  # rows a journal commit: the first chunk is visible after a few of these

FEEDS: dict[str, IntakeFeed] = {}  # run_id → its feed, while it runs (read by dispatch_imports)


class IntakeFeed:
    def __init__(
        self, journal_path: str | Path, rows: Iterable[SourceRow], run_id: str, defaults: Defaults
    ) -> None:
        self._path = journal_path
        self._rows = rows
        self.run_id = run_id
        self._defaults = defaults
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.counts: IntakeCounts | None = None
        self._thread = threading.Thread(target=self._run, name="importer-intake", daemon=True)
        self._child_process: tuple[BaseProcess, Connection] | None = None

    @classmethod
    def start(
        cls, journal_path: str | Path, rows: Iterable[SourceRow], run_id: str, defaults: Defaults
    ) -> IntakeFeed:
        feed = cls(journal_path, rows, run_id, defaults)
        FEEDS[run_id] = feed
        if "fork" in multiprocessing.get_all_start_methods():
            # Forked here, on the calling thread, before the event loop starts: no other thread
            # of ours is inside SQLite or a lock the child could inherit held.
            feed._child_process = feed._fork()
        feed._thread.start()
        return feed

    def _run(self) -> None:
        try:
            if self._child_process is not None:
                self._relay(*self._child_process)
            else:
                self._read(self._rows)
        except BaseException as exc:  # handed to the main thread by finish()
            self.error = exc
        finally:
            self.done.set()

    def _read(self, rows: Iterable[SourceRow], *, checkpoints: bool = True) -> None:
        """The intake itself, here or in the child (`checkpoints=False`: its commits leave the
        WAL to the parent's checkpoint thread, bulk/checkpoint.py, instead of stopping to fold
        it into the database with an fsync every few batches)."""
        journal = Journal.open(self._path)
        if not checkpoints:
            journal.connection.execute("PRAGMA wal_autocheckpoint=0")
        try:
            self.counts = intake(rows, journal, self.run_id, self._defaults, batch_size=BATCH)
            # At once, not when the run ends: a run killed after this is resumed (its imports
            # polled); one killed before is dropped and its imports waited for by the next run.
            journal.mark_intake_done(self.run_id)
        finally:
            journal.close()

    def _fork(self) -> tuple[BaseProcess, Connection]:
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        child = context.Process(
            target=self._child, args=(send, os.getpid()), name="importer-intake", daemon=True
        )
        child.start()
        send.close()  # the child holds the only writing end: EOF here when it ends
        return child, receive

    def _relay(self, child: BaseProcess, receive: Connection) -> None:
        """Relay what the reader says until it ends (runs on this feed's thread)."""
        result: tuple[Any, ...] | None = None
        try:
            while True:
                try:
                    message = receive.recv()
                except EOFError:
                    break
                if message[0] == "log":
                    sys.stderr.write(message[1])
                    sys.stderr.flush()
                else:
                    result = message
        finally:
            receive.close()
            child.join()
        if result is None:
            raise RuntimeError(f"reading the input stopped unexpectedly (exit code {child.exitcode})")
        if result[0] == "error":
            raise pickle.loads(result[1])
        _, self.counts, loader_state = result
        _restore_loader_state(self._rows, loader_state)

    def _child(self, send: Connection, parent: int) -> None:
        # The parent decides how a stop ends the run; the reading goes on to the end (above).
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stderr = _PipeStream(send)  # log.py writes to sys.stderr as it is now
        try:
            self._read(_while_parent_lives(self._rows, parent), checkpoints=False)
            send.send(("done", self.counts, _loader_state(self._rows)))
        except BaseException as exc:
            send.send(("error", _picklable(exc)))
        finally:
            send.close()

    def finish(self) -> IntakeCounts:
        """Wait for the whole input to be read; re-raise what stopped it."""
        self._thread.join()
        FEEDS.pop(self.run_id, None)
        if self.error is not None:
            raise self.error
        assert self.counts is not None
        return self.counts


class _PipeStream:
    """The child's stderr: each log line goes to the parent, which writes it to its own."""

    def __init__(self, send: Connection) -> None:
        self._send = send

    def write(self, text: str) -> int:
        self._send.send(("log", text))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _while_parent_lives(rows: Iterable[SourceRow], parent: int) -> Iterator[SourceRow]:
    """The rows, until the parent is gone (kill -9): then the child exits at once, writing
    nothing more. Checked once a batch, which costs nothing against reading the rows."""
    for n, row in enumerate(rows):
        if n % BATCH == 0 and os.getppid() != parent:
            os._exit(1)
        yield row


# What a Loader learns while it reads (reader.py), which the parent's copy needs afterwards for
# the summary and the input.read event. Other row sources (tests pass lists) have none.
_LOADER_STATE = ("_progress", "_noticed", "_in_folder")


def _loader_state(rows: object) -> dict[str, Any]:
    return {name: getattr(rows, name) for name in _LOADER_STATE if hasattr(rows, name)}


def _restore_loader_state(rows: object, state: dict[str, Any]) -> None:
    for name, value in state.items():
        setattr(rows, name, value)


def _picklable(exc: BaseException) -> bytes:
    """The error as the parent will re-raise it; one that does not survive pickling becomes a
    RuntimeError with the same message."""
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
    except Exception:
        data = pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))
    return data
