"""Streaming intake for the imports strategy: imports start while the file is still being read.

`IntakeFeed` runs the ordinary intake (intake.py: read, validate, de-duplicate, write to the
journal) on a thread with a journal connection of its own, in small batches, while the event
loop checks and posts chunks as soon as `imports.chunk_size` rows are ready. The producer reads
the committed rows from the journal and waits for more until the feed is done.

What changes against REST (README "Strategies"): the invalid-row check (`max_invalid_ratio`)
is made before each import is posted, over the rows read so far, instead of once before
anything is sent; once over the ratio, no further import is posted. An input error found late
(an unreadable second file) stops further imports; those already posted are reconciled.

A stop (Ctrl-C, SIGTERM) does not cut the reading short: the rest of the file is still read into
the journal, so the run stays resumable and the next run polls the imports it had started.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from importer.intake import IntakeCounts, intake
from importer.journal import Journal
from importer.models import SourceRow
from importer.validator import Defaults

BATCH = 500  # rows a journal commit: the first chunk is visible after a few of these

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

    @classmethod
    def start(
        cls, journal_path: str | Path, rows: Iterable[SourceRow], run_id: str, defaults: Defaults
    ) -> IntakeFeed:
        feed = cls(journal_path, rows, run_id, defaults)
        FEEDS[run_id] = feed
        feed._thread.start()
        return feed

    def _run(self) -> None:
        journal = Journal.open(self._path)
        try:
            self.counts = intake(self._rows, journal, self.run_id, self._defaults, batch_size=BATCH)
            # At once, not when the run ends: a run killed after this is resumed (its imports
            # polled); one killed before is dropped and its imports waited for by the next run.
            journal.mark_intake_done(self.run_id)
        except BaseException as exc:  # handed to the main thread by finish()
            self.error = exc
        finally:
            journal.close()
            self.done.set()

    def finish(self) -> IntakeCounts:
        """Wait for the whole input to be read; re-raise what stopped it."""
        self._thread.join()
        FEEDS.pop(self.run_id, None)
        if self.error is not None:
            raise self.error
        assert self.counts is not None
        return self.counts
