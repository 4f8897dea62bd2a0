"""What a person sees while rows are dispatched: a rich bar (optional) and structlog events.

Events (always, bar or not): `run.progress` every `progress_interval_s`, one `row.failed` per
failed row, and `run.paused` / `run.resumed` around every 429 pause. With `-v`, one
`row.<status>` event per settled row. Every per-row event names the row's `file`, `sheet` and
`row` (the number the spreadsheet shows).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from importer.clock import Clock
from importer.log import row_events
from importer.models import Outcome, RowStatus

if TYPE_CHECKING:
    from importer.config import Settings
    from importer.journal import Journal

log = structlog.get_logger("importer")


class RunProgress:
    BAR_REFRESH_S = 0.5

    def __init__(
        self,
        total: int,
        *,
        interval_s: float,
        bar: bool,
        clock: Clock,
        locate: Callable[[int], tuple[str, str, int]] | None = None,
    ) -> None:
        self.total = total
        self._locate = locate
        self.interval_s = interval_s
        self._clock = clock
        self._started = clock()
        self.counts: Counter[str] = Counter()
        self.done = 0
        self.paused = False
        self._window_until = 0.0
        self._pause_until = 0.0
        self.detail = ""  # e.g. the imports strategy's "3 imports in flight, …" (set_detail)
        self._bar: Progress | None = None
        self._task: Any = None
        if bar:
            self._bar = Progress(
                TextColumn("[bold]importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("created {task.fields[created]}  failed {task.fields[failed]}"),
                TextColumn("{task.fields[rate]:.1f} rows/s"),
                TimeRemainingColumn(),
                TextColumn("[yellow]{task.fields[note]}"),
                console=Console(stderr=True),
                transient=False,
            )

    def __enter__(self) -> RunProgress:
        if self._bar is not None:
            self._bar.start()
            self._task = self._bar.add_task("rows", total=self.total, created=0, failed=0, rate=0.0, note="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._refresh()
            self._bar.stop()

    @property
    def rate(self) -> float:
        elapsed = self._clock() - self._started
        return self.done / elapsed if elapsed > 0 else 0.0

    def settled(self, seq: int, outcome: Outcome) -> None:
        self.done += 1
        self.counts[outcome.status.value] += 1
        if outcome.status is RowStatus.FAILED:
            log.warning(
                "row.failed",
                **self.where(seq),
                error_code=outcome.error_code,
                http_status=outcome.http_status,
                detail=outcome.error_detail,
            )
        elif row_events():
            log.info(
                f"row.{outcome.status.value}",
                **self.where(seq),
                customer_payment_source_id=outcome.customer_payment_source_id,
                detail=outcome.error_detail,
            )
        self._refresh()

    def where(self, seq: int) -> dict[str, object]:
        """The row as a person finds it: file, sheet and the row number the spreadsheet shows."""
        source_file, sheet, row_number = self._locate(seq) if self._locate else ("", "", 0)
        return {"file": source_file, "sheet": sheet, "row": row_number}

    def on_wait(self, wait_s: float) -> None:
        """A request waits `wait_s` for room in a rate window: the line says so until then."""
        self._window_until = max(self._window_until, self._clock() + wait_s)

    def note(self) -> str:
        """What the run is waiting for, if anything, with the time left."""
        if self.paused:
            left = self._pause_until - self._clock()
            return f"paused (429), {left:.1f} s left" if left > 0.05 else "paused (429)"
        left = self._window_until - self._clock()
        if left > 0.05:
            return f"waiting for a rate window, {left:.1f} s left"
        return self.detail

    def on_pause(self, pause_s: float) -> None:
        self.paused = True
        self._pause_until = self._clock() + pause_s
        log.warning("run.paused", reason="429", pause_s=round(pause_s, 3))
        self._refresh()

    def on_resume(self, paused_s: float) -> None:
        self.paused = False
        log.info("run.resumed", paused_s=round(paused_s, 3))
        self._refresh()

    def _refresh(self) -> None:
        if self._bar is None or self._task is None:
            return
        self._bar.update(
            self._task,
            completed=self.done,
            created=self.counts[RowStatus.CREATED.value],
            failed=self.counts[RowStatus.FAILED.value],
            rate=self.rate,
            note=self.note(),
        )

    def set_detail(self, text: str) -> None:
        self.detail = text
        self._refresh()

    def snapshot(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "total": self.total,
            "rows_per_s": round(self.rate, 2),
            "paused": self.paused,
            "waiting_for_window_s": round(max(0.0, self._window_until - self._clock()), 1),
            **dict(sorted(self.counts.items())),
        }

    async def ticker(self) -> None:
        """Log `run.progress` every interval until cancelled. With the bar, also redraw it twice
        a second, so its rate and the time left in a rate window stay current while no row
        settles (it used to freeze at the last rate during a wait)."""
        next_event = self._clock() + self.interval_s
        while True:
            step = min(self.BAR_REFRESH_S, self.interval_s) if self._bar is not None else self.interval_s
            await asyncio.sleep(step)
            self._refresh()
            if self._clock() >= next_event - 1e-3:
                next_event = self._clock() + self.interval_s
                log.info("run.progress", **self.snapshot())


def run_progress(settings: Settings, journal: Journal, run_id: str, total: int, *, bar: bool) -> RunProgress:
    """The progress display of a run or an undo; a failed row is named by its file and row
    (journal.location). REST, the imports strategy and undo all use it."""
    return RunProgress(
        total,
        interval_s=settings.progress_interval_s,
        bar=bar,
        clock=time.monotonic,
        locate=lambda seq: journal.location(run_id, seq),
    )
