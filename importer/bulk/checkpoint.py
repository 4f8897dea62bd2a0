"""WAL checkpoints off the event loop while the imports strategy runs.

SQLite copies the write-ahead log into the database (a checkpoint, with its fsyncs) inside
whichever commit takes the log past `wal_autocheckpoint` pages. In the imports strategy that
commit is usually one of the event loop's (an import's rows journalled before its POST, an
import's outcomes settled), and the loop then stands still for tens of milliseconds while the
intake, the sandbox's answers and the next free slot wait. For the dispatch's duration the
loop's connection does no checkpoints; a thread with a connection of its own runs a PASSIVE
checkpoint every `every_s` (SQLite releases the GIL while it works), which never blocks a
writer and copies only what no reader still needs. The usual setting is restored at the end,
so the log is folded back as before by the next commit.

A PASSIVE checkpoint never starts the log over, and with the reading process and the loop
writing all the time the writers rarely found it fully copied: the log file of a 100,000-row
run grew to 274 MB, and deleting it when the journal closed took 0.16 s after the report.
So every `TRUNCATE_EVERY`th turn asks for a TRUNCATE checkpoint instead: without waiting (no
busy timeout), it copies what is left, empties the file if no reader is using it, and holds
the writers back only while it copies (a turn's worth of log). The file now stays at tens of MB.

Durability is unchanged: a commit is durable in the log (synchronous=NORMAL, WAL) whether or
not it has been checkpointed, and a killed process leaves a log SQLite replays on open.
"""

from __future__ import annotations

import sqlite3
import threading
from types import TracebackType

from importer.journal import Journal

DEFAULT_AUTOCHECKPOINT = 1000  # SQLite's default, in pages
EVERY_S = 0.5
TRUNCATE_EVERY = 4  # every 4th turn (2 s) also empties the log file, if no one is reading it


class Checkpointer:
    def __init__(self, journal: Journal, every_s: float = EVERY_S) -> None:
        self._journal = journal
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.checkpoints = 0  # how many ran (tests look)

    def __enter__(self) -> Checkpointer:
        if self._journal.path == ":memory:":
            return self  # no log to fold: nothing to move
        self._journal.connection.execute("PRAGMA wal_autocheckpoint=0")
        self._thread = threading.Thread(target=self._run, name="importer-checkpoint", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._journal.connection.execute(f"PRAGMA wal_autocheckpoint={DEFAULT_AUTOCHECKPOINT}")

    def _run(self) -> None:
        conn = sqlite3.connect(self._journal.path, isolation_level=None, check_same_thread=False)
        try:
            # No waiting: a checkpoint that cannot have what it needs now is tried again later.
            conn.execute("PRAGMA busy_timeout=0")
            turn = 0
            while not self._stop.wait(self._every_s):
                turn += 1
                self._checkpoint(conn, "TRUNCATE" if turn % TRUNCATE_EVERY == 0 else "PASSIVE")
            self._checkpoint(conn, "PASSIVE")  # the log as the loop left it, before the report reads it
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection, mode: str) -> None:
        try:
            conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
            self.checkpoints += 1
        except sqlite3.Error:
            pass  # busy or locked: the next turn, or the restored autocheckpoint, does it
