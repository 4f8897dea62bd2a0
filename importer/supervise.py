"""What a run's tasks share when one of them fails: stop the others, and remember why.

`run` (dispatcher._Run), the imports strategy (bulk.run.BulkRun) and `undo` (deleter._Undo) each
run several tasks. An `Abort` (or a token that cannot be had) ends the run with exit 3 and a
reason; any other exception is a bug, re-raised once every task has stopped. Either way `halt`
is set, so no task takes new rows and none is left waiting forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from importer.auth import AuthFailed
from importer.client import Abort


class Supervised:
    halt: asyncio.Event
    abort: str | None
    crash: Exception | None

    def start_supervision(self) -> None:
        self.halt = asyncio.Event()  # stop, fail_fast or abort: take no new rows
        self.abort = None
        self.crash = None  # a bug in a task: re-raised once everything is stopped

    async def guarded(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a task; an Abort (or a bug) halts the whole run instead of leaving it hanging."""
        try:
            await coro
        except (Abort, AuthFailed) as exc:
            self.abort = self.abort or str(exc)
            self.halt.set()
        except Exception as exc:
            self.crash = self.crash or exc
            self.halt.set()
