"""`DispatchContext`: what every part of one dispatch shares, passed as one value.

Which run (run id), against which API (target), where outcomes go (journal), what is counted
(stats), how time is told and passed (clock, sleep: the event loop's, or a test's), plus the
command line's choices that shape the dispatch. The REST dispatcher (dispatcher._Run), the
imports strategy (bulk/run.BulkRun) and the row's POST (create.Creator) take it instead of
threading the same arguments one by one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

from importer.clock import Clock, Sleep
from importer.config import Settings
from importer.journal import Journal
from importer.progress import RunProgress
from importer.stats import DispatchStats

S = TypeVar("S", bound=DispatchStats)


@dataclass(frozen=True, slots=True)
class DispatchContext(Generic[S]):
    settings: Settings
    journal: Journal
    run_id: str
    target: str  # the API (commercelayer.base_url) the journal keys pairings by
    stats: S
    clock: Clock  # monotonic seconds
    sleep: Sleep
    progress: RunProgress
    stop: asyncio.Event  # set by SIGINT/SIGTERM: finish in-flight requests, take no new rows
    dry_run: bool = False
    max_rows: int | None = None
    fail_fast: bool = False
    force: bool = False  # live limits on a test organization (identity.py)
    recreate_undone: bool = False  # create again the pairings `importer undo` deleted
