"""`dispatch()`: settle every open row of a run over the API, exactly once, at the full rate.

    journal.open_rows ─▶ feeder: look-ups for chunk k+1 ──(queue, 2×concurrency)──▶ workers
                         once chunk k is all queued;                          POST, retry,
                         max_rows, dry run                                    re-check

The look-up for a chunk is made only when the previous chunk is all in the queue, so between a
pairing's wallet check and its POST there are at most the queue, the requests in flight and the
rows before it in its own chunk: the window in which a second host (another journal) could
create the same pairing is as short as one look-up per chunk allows (docs/exactly-once.md).
Memory stays flat: one chunk and a short queue are held, whatever the file size.
Every outcome goes to the journal as it happens; the report reads it from there in input order,
so rows may finish in any order. The POST of a row (create.py) is the exactly-once protocol of
docs/exactly-once.md: `sending` is committed before the request leaves, and a POST whose answer
was lost is looked up before it is ever sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from importer.auth import AuthFailed
from importer.config import Settings
from importer.context import DispatchContext
from importer.create import Creator
from importer.errors import RunAborted
from importer.existence import ExistenceChecker
from importer.identity import choose_preset, decode_claims
from importer.journal import Journal
from importer.limits import WindowSpec
from importer.models import Outcome, RowStatus
from importer.prepare import ChunkPreparer, Work
from importer.progress import run_progress
from importer.session import SEND_STAMP_BATCH, SendStamps, open_session
from importer.stats import DispatchStats
from importer.supervise import Supervised
from importer.transport import run_sender
from importer.update import Updater
from importer.wallets import Rechecker, WalletReader
from importer.wire import Sender

_DONE = None  # end-of-stream marker in the queues
log = structlog.get_logger("importer")


class _Run(Supervised):
    """One dispatch: the wiring and the tasks. Built by `dispatch`, used once."""

    def __init__(self, ctx: DispatchContext[DispatchStats], sender: Sender) -> None:
        self.ctx = ctx
        settings, progress = ctx.settings, ctx.progress
        self.stamps = SendStamps(ctx.journal, ctx.target, settings)
        api = open_session(
            settings,
            sender,
            ctx.stats,
            on_pause=progress.on_pause,
            on_resume=progress.on_resume,
            on_wait=progress.on_wait,
            on_send=self.stamps.note,
        )
        self.backoff, self.windows, self.gate, self.tokens, self.client = (
            api.backoff,
            api.windows,
            api.gate,
            api.tokens,
            api.client,
        )
        reader = WalletReader(
            self.client, wallet_batch=settings.lookups.wallet_batch, email_batch=settings.lookups.email_batch
        )
        self.preparer = ChunkPreparer(
            ctx.journal,
            ctx.run_id,
            ctx.target,
            reader,
            ctx.stats,
            dry_run=ctx.dry_run,
            clock=ctx.clock,
            on_existing=settings.on_existing,
            recreate_undone=ctx.recreate_undone,
        )
        self.updater = Updater(self.client)
        self.rechecker = Rechecker(reader)
        self.existence = ExistenceChecker(self.client, ctx.stats)
        self.creator = Creator(
            ctx,
            self.client,
            self.rechecker,
            self.backoff,
            check_before_post=settings.lookups.check_before_post,
        )
        self.chunk_rows = settings.lookups.wallet_batch
        self.queue: asyncio.Queue[Work | None] = asyncio.Queue(maxsize=2 * settings.concurrency)
        self.start_supervision()

    # -- send stamps across processes (docs/rate-limits.md; session.SendStamps) ----------------
    def flush_sends(self, *, at_least: int = 1) -> None:
        self.stamps.flush(at_least=at_least)

    def seed_windows(self) -> None:
        self.stamps.seed(self.windows)

    def follow_token(self, token: str) -> None:
        """Pick the rate-limit preset from the token's `test` claim (identity.py) and retune the
        windows to it; warn, or refuse, when a preset was given and disagrees."""
        rl = self.ctx.settings.rate_limit
        choice = choose_preset(rl.preset, decode_claims(token), force=self.ctx.force)
        if choice.warning:
            log.warning("run.preset_mismatch", warning=choice.warning, preset=choice.preset)
        self.ctx.stats.rate_limit_preset = choice.preset
        burst, average = rl.limits_for(choice.preset)
        self.windows.retune(
            WindowSpec(burst, rl.burst_window_s, average, rl.average_window_s, rl.safety_margin_s)
        )

    # -- outcomes ---------------------------------------------------------------------------
    def settle(self, seq: int, outcome: Outcome) -> None:
        """A worker's outcome (a POST). With --fail-fast a failure stops the run at once: rows
        already in flight finish, rows still queued (all later in the input) are not sent."""
        self.ctx.journal.set_outcome(self.ctx.run_id, seq, outcome)
        self._count(seq, outcome)
        if outcome.status is RowStatus.FAILED and self.ctx.fail_fast:
            self.halt.set()
        self.flush_sends(at_least=SEND_STAMP_BATCH)

    def _count(self, seq: int, outcome: Outcome) -> None:
        self.ctx.stats.rows_settled += 1
        self.ctx.progress.settled(seq, outcome)
        if outcome.status is RowStatus.FAILED and self.ctx.fail_fast and self.ctx.stats.first_failure is None:
            self.ctx.stats.first_failure = self.ctx.journal.location(self.ctx.run_id, seq)

    def settle_many(self, items: list[tuple[int, Outcome]]) -> None:
        """Outcomes of look-ups (no POST). They do not halt the run: `feed` stops after them."""
        if items:
            self.ctx.journal.set_many_outcomes(self.ctx.run_id, items)
            for seq, outcome in items:
                self._count(seq, outcome)
            self.flush_sends(at_least=SEND_STAMP_BATCH)

    # -- producer side ----------------------------------------------------------------------
    async def feed(self) -> None:
        """Prepare chunk after chunk, settle what look-ups settled, queue the rest; `max_rows`
        caps the rows that need a POST. A chunk is looked up only when the previous one is all
        queued (just in time: see the module doc).

        --fail-fast and a failure found by a look-up (say an unknown e-mail at row 50): the
        rows before it in the input are still queued and sent, as if the rows had been taken
        one by one, and nothing after it is taken. The look-ups of a chunk run ahead of its
        POSTs, so halting right there would leave earlier rows unsent for no reason of theirs."""
        needing_post = 0
        rows = iter(self.ctx.journal.open_rows(self.ctx.run_id))
        while not self.halt.is_set():
            chunk = [item for _, item in zip(range(self.chunk_rows), rows, strict=False)]
            if not chunk:
                break
            prepared = await self.preparer.prepare(chunk)
            if self.halt.is_set():
                break
            settled, works = prepared.settled, prepared.work
            stop_at = (
                min((seq for seq, o in settled if o.status is RowStatus.FAILED), default=None)
                if self.ctx.fail_fast
                else None
            )
            if stop_at is not None:
                settled = [item for item in settled if item[0] <= stop_at]
                works = [work for work in works if work.seq < stop_at]
            self.settle_many(settled)
            if self.ctx.max_rows is not None:
                works = works[: max(0, self.ctx.max_rows - needing_post)]  # no look-up beyond the cap
            missing = (
                await self.existence.check((w.seq, w.pairing, w.customer_id) for w in works)
                if self.ctx.dry_run
                else {}
            )
            capped = len(works) < len(prepared.work) and stop_at is None
            for work in works:
                if self.halt.is_set():
                    break
                needing_post += 1
                if self.ctx.dry_run:
                    # would_create: the customer exists, the entry does not, and the payment
                    # source (or method) the POST would name exists (existence.py).
                    outcome = missing.get(work.seq) or Outcome(
                        RowStatus.WOULD_CREATE, customer_id=work.customer_id
                    )
                    self.settle(work.seq, outcome)
                else:
                    await self.queue.put(work)
            else:
                if stop_at is None and not capped:
                    continue
            break  # max_rows reached, halted, or a look-up failed under --fail-fast
        for _ in range(self.ctx.settings.concurrency):
            await self.queue.put(_DONE)

    # -- workers ----------------------------------------------------------------------------
    async def work(self) -> None:
        while (work := await self.queue.get()) is not None:
            if self.halt.is_set():
                continue  # leave it pending: it is reported not_attempted
            if work.fix is not None:
                self.settle(work.seq, await self.updater.update(work))
            else:
                self.settle(work.seq, await self.creator.create(work))

    async def run(self) -> None:
        try:
            token = await self.tokens.get()  # bad credentials abort before any row is touched
        except AuthFailed as exc:
            self.abort = str(exc)
            return
        self.follow_token(token)  # may refuse (PresetRefused) before any /api request
        self.seed_windows()
        producers = [asyncio.create_task(self.guarded(self.feed()), name="importer-feed")]
        workers = [
            asyncio.create_task(self.guarded(self.work()), name=f"importer-worker-{i}")
            for i in range(self.ctx.settings.concurrency)
        ]
        ticker = asyncio.create_task(self.ctx.progress.ticker(), name="importer-progress")
        stop_watch = asyncio.create_task(self.ctx.stop.wait(), name="importer-stop")
        halt_watch = asyncio.create_task(self.halt.wait(), name="importer-halt")
        try:
            done_all: asyncio.Future[list[None]] = asyncio.gather(*workers)
            watched: set[asyncio.Future[Any]] = {done_all, stop_watch, halt_watch}
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if not done_all.done():
                # Stop taking rows; in-flight requests get the grace period (none on abort).
                self.halt.set()
                for task in producers:
                    task.cancel()
                grace = 0.0 if self.abort else self.ctx.settings.timeouts.shutdown_grace_s
                _drain(self.queue, self.ctx.settings.concurrency)
                await asyncio.wait(workers, timeout=grace)
            for task in (*producers, *workers):
                task.cancel()  # a POST cut off here leaves its pairing `sending`: settled next run
            await asyncio.gather(*producers, *workers, return_exceptions=True)
            with contextlib.suppress(asyncio.CancelledError):
                await done_all
        finally:
            helpers: list[asyncio.Task[Any]] = [ticker, stop_watch, halt_watch]
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.rechecker.aclose()
            await self.gate.aclose()
            self.flush_sends()
            self.ctx.stats.paused_s = self.gate.paused_s
        if self.crash is not None:
            raise self.crash


def _drain(queue: asyncio.Queue[Work | None], workers: int) -> None:
    """Empty the queue (those rows stay pending) and tell every worker to stop."""
    while True:
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            break
    for _ in range(workers):
        with contextlib.suppress(asyncio.QueueFull):
            queue.put_nowait(_DONE)


async def dispatch(
    settings: Settings,
    journal: Journal,
    run_id: str,
    *,
    target: str,
    dry_run: bool,
    max_rows: int | None,
    fail_fast: bool,
    stop: asyncio.Event,
    total: int,
    progress_bar: bool,
    sender: Sender | None = None,
    force: bool = False,
    recreate_undone: bool = False,
) -> DispatchStats:
    """Settle the run's open rows. Returns the stats; raises RunAborted when the run cannot go on.

    `total` is the number of open rows (`journal.count_open`), for the progress display; 0 means
    there is nothing to do and nothing is sent. `sender` replaces the aiohttp transport (a
    benchmark's instrumented one, say); by default the run owns one `AiohttpSender`.
    """
    stats = DispatchStats()
    if total == 0:
        return stats  # nothing open: no token, no request
    started = time.monotonic()
    progress = run_progress(settings, journal, run_id, total, bar=progress_bar)
    http = run_sender(
        sender,
        settings.commercelayer.base_url or target,
        concurrency=settings.concurrency,
        request_s=settings.timeouts.request_s,
        connect_s=settings.timeouts.connect_s,
    )
    async with http as sending:
        with progress:
            ctx = DispatchContext(
                settings,
                journal,
                run_id,
                target,
                stats,
                clock=asyncio.get_running_loop().time,
                sleep=asyncio.sleep,
                progress=progress,
                stop=stop,
                dry_run=dry_run,
                max_rows=max_rows,
                fail_fast=fail_fast,
                force=force,
                recreate_undone=recreate_undone,
            )
            run = _Run(ctx, sending)
            await run.run()
    stats.elapsed_s = time.monotonic() - started
    if run.abort is not None:
        raise RunAborted(run.abort, stats=stats.as_dict())
    return stats
