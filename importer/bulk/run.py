"""`dispatch_imports()`: settle every open row of a run through the Imports API, exactly once.

    resume: imports this run started (journal) ─▶ look up by reference / poll ─▶ reconcile
    open rows ─▶ pre-check (prepare.py: e-mails, duplicates, journal, wallets) ─▶ chunk buffer
        ─▶ journal the import + its rows (pairings `sending`) ─▶ POST /api/imports
        ─▶ poll (cacheable budget, own 429 gate) ─▶ read back ─▶ reconcile ─▶ journal
    rows of interrupted imports that were not created ─▶ sent once more (skip_errors) ─▶ ...

At most `imports.max_in_flight` imports are posted and not yet finished at any moment. The checked
rows wait in a buffer; whenever a slot is free, sizing.py says how many of them the next import
takes (small ones first so every slot is busy at once, shares that end together at the end), while
later rows are still being read and checked. Same signature and stats contract as
dispatcher.dispatch, so pipeline.py treats both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import structlog

from importer.auth import AuthFailed, TokenProvider
from importer.bulk.batched import BatchedJournal
from importer.bulk.checkpoint import Checkpointer
from importer.bulk.chunking import cut, halves
from importer.bulk.precheck import SnapshotWalletReader
from importer.bulk.readback import READBACK, AttachmentFetcher, ExportReader, ListReader, Reader
from importer.bulk.reconcile import Found, reconcile
from importer.bulk.records import UNKNOWN, BulkJournal, ChunkRow, ImportRecord, chunk_row
from importer.bulk.sizing import Moment, PaceMeter, SizingRule, next_chunk, server_span_s
from importer.bulk.stats import BulkStats
from importer.bulk.stream import FEEDS
from importer.bulk.submit import Poller, Posted, Refused, Submitter, TooLarge, Unknown, import_body
from importer.client import Abort, ApiClient
from importer.config import CACHEABLE_PRESETS, Settings
from importer.context import DispatchContext
from importer.errors import RunAborted
from importer.identity import choose_preset, decode_claims
from importer.journal import Journal
from importer.limits import Windows, WindowSpec
from importer.models import Outcome, Pairing, RowStatus
from importer.pacing import Pacer, PauseGate
from importer.prepare import ChunkPreparer
from importer.progress import run_progress
from importer.retry import Backoff
from importer.session import SEND_STAMP_BATCH, SendStamps
from importer.stats import DispatchStats
from importer.supervise import Supervised
from importer.transport import run_sender
from importer.wallets import LookupFailed
from importer.wire import Sender

REFERENCE_ORIGIN = "importer"
STREAM_WAIT_S = 0.02  # a streaming intake's next batch is polled for this often
# Rows the pre-check takes at once: its journal questions are asked for the batch in a few
# queries (batched.py); its API reads are cut to the look-up batch sizes inside.
CHECK_BATCH = 500
# With e-mail rows among them, more at once: their addresses go in one export of customers
# (precheck.py), about three requests for thousands of addresses, instead of one per batch.
EMAIL_CHECK_BATCH = 5_000
WAKE_S = 0.25  # the chunk feeder looks again this often even when nothing woke it
NEAR_END_S = 0.05  # an import about to end is polled this long after its expected end
INVALID_CHECK_S = 1.0  # the invalid-row ratio is counted at most this often while reading
MORE_EVERY_S = 0.2  # how often the rows still to be checked are counted once the input is read
log = structlog.get_logger("importer")


class BulkRun(Supervised):
    def __init__(self, ctx: DispatchContext[BulkStats], sender: Sender) -> None:
        self.ctx = ctx
        self.imp = imp = ctx.settings.imports
        self.sleep = ctx.sleep
        retry = ctx.settings.retry
        self.backoff = Backoff(retry.base_delay_s, retry.max_delay_s, retry.max_attempts)
        self._wire_api(sender)
        self._wire_polling(sender)
        self._wire_reads()
        self.chunk_size = imp.chunk_size
        self.slots = asyncio.Semaphore(imp.max_in_flight)
        self.in_flight = 0
        # By import reference: processed + errors (progress); rows, while it runs, and when its
        # progress was last polled (sizing).
        self.processed: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        self.seen_at: dict[str, float] = {}
        self.pace = PaceMeter()
        # Checked rows waiting for an import; the producer fills it, feed_imports empties it.
        self.buffer: list[ChunkRow] = []
        self.buffer_max = 2 * imp.chunk_size  # the producer waits above this: memory stays flat
        self.producing = True
        self.last_seq = -1  # the producer's place in the run's open rows
        self.queued = 0  # rows read into batches, not yet checked
        self.check_stopped = False  # --max-rows reached, or halted: no further batch is checked
        self.more_cache: tuple[float, int] | None = None
        self.invalid_checked: tuple[float, bool] | None = None  # (when, still reading then)
        self.wake = asyncio.Event()  # rows buffered, a slot freed, the input read
        self.room = asyncio.Event()  # rows left the buffer
        self.tracks: set[asyncio.Task[None]] = set()
        self.resend: list[ChunkRow] = []
        self.settled_here: set[int] = set()  # rows settled by resumed imports in this process
        self.resuming = False
        self.feed = FEEDS.get(ctx.run_id)
        self.stream_stop: str | None = None
        self.start_supervision()

    def _wire_api(self, sender: Sender) -> None:
        """The writes and reads: the token, the rate windows and their 429 gate, the client."""
        ctx, settings, rl = self.ctx, self.ctx.settings, self.ctx.settings.rate_limit
        progress, clock, stats = ctx.progress, ctx.clock, ctx.stats
        self.windows = Windows(
            WindowSpec(
                rl.burst_limit, rl.burst_window_s, rl.average_limit, rl.average_window_s, rl.safety_margin_s
            )
        )
        self.gate = PauseGate(clock, self.sleep, on_pause=progress.on_pause, on_resume=progress.on_resume)
        self.tokens = TokenProvider(
            sender, settings, stats, clock=clock, sleep=self.sleep, backoff=self.backoff
        )
        # Writes and uncacheable reads leave stamps for the next process on this journal (a
        # rerun, an undo), as REST does; polls spend the cacheable budget and are not stamped.
        self.stamps = SendStamps(ctx.journal, ctx.target, settings)
        self.client = ApiClient(
            sender,
            self.tokens,
            Pacer(self.windows, self.gate, clock, self.sleep),
            self.backoff,
            stats,
            slots=settings.concurrency,
            pause_s=rl.burst_window_s,
            sleep=self.sleep,
            on_send=self.stamps.note,
        )

    def _wire_polling(self, sender: Sender) -> None:
        # Polling spends the cacheable-read budget (GET /api/imports is cacheable), through a gate
        # of its own: a 429 while polling pauses polling, not the run's writes and reads.
        ctx, imp, rl = self.ctx, self.imp, self.ctx.settings.rate_limit
        clock, stats = ctx.clock, ctx.stats
        self.poll_windows = Windows(self._poll_spec(rl.preset or "test"))  # unset: the stricter
        self.poll_gate = PauseGate(
            clock, self.sleep, on_pause=self._poll_paused, on_resume=self._poll_resumed
        )
        self.poll_client = ApiClient(
            sender,
            self.tokens,
            Pacer(self.poll_windows, self.poll_gate, clock, self.sleep),
            self.backoff,
            stats,
            slots=imp.max_in_flight + 1,
            pause_s=rl.burst_window_s,
            sleep=self.sleep,
        )

    def _poll_spec(self, preset: str) -> WindowSpec:
        """The cacheable-read windows of `preset`, unless imports.cacheable_* set them."""
        rl, imp = self.ctx.settings.rate_limit, self.imp
        cacheable = CACHEABLE_PRESETS[preset]
        return WindowSpec(
            imp.cacheable_burst or cacheable["burst"],
            rl.burst_window_s,
            imp.cacheable_average or cacheable["average"],
            rl.average_window_s,
            rl.safety_margin_s,
        )

    def _wire_reads(self) -> None:
        """Submitting and polling imports, reading exports back, and the pre-check's wallets."""
        ctx, imp, settings = self.ctx, self.imp, self.ctx.settings
        self.submitter = Submitter(
            self.client, self.poll_client, self.backoff, self.sleep, imp.poll_interval_s
        )
        self.poller = Poller(self.poll_client, self.sleep, imp.poll_interval_s)
        self.lister = ListReader(self.client, batch=settings.lookups.wallet_batch)
        self.fetcher = AttachmentFetcher(settings.timeouts.request_s)
        self.exporter = ExportReader(
            self.client,
            self.fetcher,
            self.lister,
            max_records=imp.export_max_records,
            poll_interval_s=imp.poll_interval_s,
        )
        self.wallets = SnapshotWalletReader(
            self.client,
            self.exporter,
            wallet_batch=settings.lookups.wallet_batch,
            email_batch=settings.lookups.email_batch,
            snapshot_max=imp.precheck_snapshot_max,
            email_lookup=imp.email_lookup,
        )
        self.exporter.existing = self.wallets.existing_count
        self.batched = BatchedJournal(ctx.journal)
        self.preparer = ChunkPreparer(
            self.batched,
            ctx.run_id,
            ctx.target,
            self.wallets,
            ctx.stats,
            dry_run=False,
            recreate_undone=ctx.recreate_undone,
        )
        self.bj = BulkJournal(ctx.journal)

    # -- progress -------------------------------------------------------------------------------
    def _poll_paused(self, pause_s: float) -> None:
        self.ctx.stats.poll_pauses += 1
        log.warning("imports.polling_paused", reason="429", pause_s=round(pause_s, 3))

    def _poll_resumed(self, paused_s: float) -> None:
        log.info("imports.polling_resumed", paused_s=round(paused_s, 3))

    def snapshot(self) -> dict[str, Any]:
        return {
            "imports_in_flight": self.in_flight,
            "rows_processed": sum(self.processed.values()),
            "rows_reconciled": self.ctx.stats.rows_reconciled,
            "rows_settled": self.ctx.stats.rows_settled,
            "total": self.ctx.progress.total,
        }

    async def ticker(self) -> None:
        """`imports.progress` every progress interval; the bar's note twice a second."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(min(0.5, self.ctx.settings.progress_interval_s))
            now = self.snapshot()
            self.ctx.progress.set_detail(
                f"{now['imports_in_flight']} imports in flight, {now['rows_processed']} processed, "
                f"{now['rows_reconciled']} reconciled"
            )
            if time.monotonic() - last >= self.ctx.settings.progress_interval_s:
                last = time.monotonic()
                log.info("imports.progress", **now)

    # -- outcomes -------------------------------------------------------------------------------
    def _count(self, seq: int, outcome: Outcome) -> None:
        self.ctx.stats.rows_settled += 1
        self.ctx.progress.settled(seq, outcome)
        if outcome.status is RowStatus.FAILED and self.ctx.fail_fast:
            if self.ctx.stats.first_failure is None:
                self.ctx.stats.first_failure = self.ctx.journal.location(self.ctx.run_id, seq)
            self.halt.set()

    def settle_rows(self, items: list[tuple[ChunkRow, Outcome]]) -> None:
        if not items:
            return
        self.bj.settle(self.ctx.run_id, self.ctx.target, items)
        self.stamps.flush(at_least=SEND_STAMP_BATCH)
        for row, outcome in items:
            if self.resuming:
                self.settled_here.add(row.seq)
            self._count(row.seq, outcome)

    def settle_prepared(self, items: list[tuple[int, Outcome]]) -> None:
        if items:
            self.ctx.journal.set_many_outcomes(self.ctx.run_id, items)
            for seq, outcome in items:
                self._count(seq, outcome)

    def fail_rows(self, rows: list[ChunkRow], code: str, detail: str, http_status: int | None = None) -> None:
        self.settle_rows(
            [(r, Outcome(RowStatus.FAILED, None, r.customer_id, http_status, code, detail, 1)) for r in rows]
        )

    def _request_counts(self) -> None:
        """The pre-check's and the read-back's request counts into the stats. Read-back requests
        are the list reader's and the exporter's own (not the pre-check's exports)."""
        stats = self.ctx.stats
        stats.precheck_requests = self.wallets.requests
        stats.email_exports = self.wallets.email_exports
        stats.readback_requests = self.lister.requests + self.exporter.requests_by[READBACK]
        stats.exports_created = self.exporter.exports_created
        stats.export_links_expired = self.exporter.links_expired

    # -- sending --------------------------------------------------------------------------------
    async def launch(self, rows: list[ChunkRow], attempt: int) -> None:
        """Journal and POST one import once a slot is free, then track it. Halves on "too large"."""
        release = await self.claim_slot()
        if release is not None:
            await self.post(self.journal_chunk(rows, attempt, release), rows, attempt, release)

    async def claim_slot(self) -> Callable[[], None] | None:
        """A slot for the next import (waits for one); None: no further import may be posted."""
        if self._too_many_invalid():
            log.warning("imports.stopped_posting", reason=self.stream_stop)
            self.halt.set()
            return None
        await self.slots.acquire()
        if self.halt.is_set():  # stopped (fail-fast, a signal) while waiting for a slot: rows stay open
            self.slots.release()
            return None
        if self.feed is not None and not self.feed.done.is_set():
            self.ctx.stats.posted_while_reading += 1
        return self._holding_slot()

    def _holding_slot(self) -> Callable[[], None]:
        """Count a slot just acquired as in flight; the call returned gives it back, once."""
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1
                self.slots.release()
                self.wake.set()  # a free slot: the feeder may post the next import

        self.in_flight += 1
        return release

    def journal_chunk(self, rows: list[ChunkRow], attempt: int, release: Callable[[], None]) -> str:
        """The import and its rows into the journal, before its POST; its reference."""
        try:
            reference = self.bj.new_chunk(self.ctx.run_id, self.ctx.target, rows, attempt)
        except BaseException:
            release()
            raise
        # Its slot's load from now on, for sizing (the next decision may come before the POST).
        self.sizes[reference] = len(rows)
        self.pace.posted(reference, asyncio.get_running_loop().time())
        return reference

    async def post(
        self, reference: str, rows: list[ChunkRow], attempt: int, release: Callable[[], None]
    ) -> None:
        try:
            body = import_body(
                reference, [r.input for r in rows], skip_errors=attempt > 0, origin=REFERENCE_ORIGIN
            )
            result = await self.submitter.post(reference, body)
        except BaseException:
            self.sizes.pop(reference, None)
            release()
            raise
        if not isinstance(result, Posted):
            self.sizes.pop(reference, None)
        self.ctx.stats.lost_answers = self.submitter.lost_answers
        if isinstance(result, Posted):
            # The inputs are no longer needed: an import of 10,000 keeps only what reconcile uses.
            for row in rows:
                row.input = {}
            self.ctx.stats.imports_posted += 1
            # Until its first poll, an import is taken to have started when it was accepted:
            # counted as not started, the imports just posted made the last shares too big.
            self.seen_at.setdefault(reference, asyncio.get_running_loop().time())
            self.bj.set_posted(reference, result.import_id)
            log.info("imports.posted", reference=reference, import_id=result.import_id, rows=len(rows))
            self._spawn(self.track(reference, result.import_id, rows, attempt, release))
            return
        release()
        await self._not_posted(reference, rows, attempt, result)

    async def _not_posted(
        self, reference: str, rows: list[ChunkRow], attempt: int, result: TooLarge | Refused | Unknown
    ) -> None:
        """An import that was not accepted: halve a too large one, fail the rows otherwise."""
        if isinstance(result, TooLarge) and len(rows) > 1:
            self.bj.set_state(reference, "split")
            self.ctx.stats.imports_split += 1
            first, second = halves(rows)
            self.chunk_size = min(self.chunk_size, len(first))
            log.warning(
                "imports.chunk_halved",
                reference=reference,
                rows=len(rows),
                now=len(first),
                reason=result.detail,
            )
            await self.launch(first, attempt)
            await self.launch(second, attempt)
        elif isinstance(result, Unknown):
            self.fail_rows(rows, UNKNOWN, result.detail)
        else:
            detail = result.detail if isinstance(result, TooLarge | Refused) else str(result)
            code = result.code if isinstance(result, Refused) else "IMPORT_TOO_LARGE"
            status = result.http_status if isinstance(result, Refused) else None
            self.bj.set_state(reference, "refused")
            self.fail_rows(rows, code, f"the import was refused: {detail}", status)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(self.guarded(coro))
        self.tracks.add(task)
        task.add_done_callback(self.tracks.discard)

    async def track(
        self, reference: str, import_id: str, rows: list[ChunkRow], attempt: int, release: Callable[[], None]
    ) -> None:
        try:
            self.sizes[reference] = len(rows)  # a resumed import's too

            def seen(attributes: dict[str, Any]) -> float | None:
                done = attributes.get("processed_count", 0) + attributes.get("errors_count", 0)
                self.processed[reference] = int(done) if isinstance(done, int) else 0
                self.seen_at[reference] = now = asyncio.get_running_loop().time()
                if attributes.get("status") != "in_progress":
                    return None
                self.pace.running(reference, now, self.processed[reference])
                if self.pace.pace is None:
                    return None
                # The next poll when the import should be done, if that is sooner than the interval.
                return (len(rows) - self.processed[reference]) / self.pace.pace + NEAR_END_S

            attributes = await self.poller.wait(import_id, seen)
        except BaseException:
            release()
            raise
        finally:
            self.ctx.stats.polls = self.poller.polls
            self.sizes.pop(reference, None)
            self.seen_at.pop(reference, None)
        self.pace.ended(reference, len(rows), server_span_s(attributes))
        if not self.ctx.fail_fast:
            release()  # the server's slot is free; the read-back does not hold it
        status = attributes.get("status") if attributes else None
        if status == "completed":
            self.ctx.stats.imports_completed += 1
        elif status == "interrupted":
            self.ctx.stats.imports_interrupted += 1
        summary = {
            k: (attributes or {}).get(k) for k in ("status", "inputs_size", "processed_count", "errors_count")
        }
        log.info("imports.finished", reference=reference, import_id=import_id, **summary)
        self.bj.set_state(reference, "processed", status=str(status), summary=summary)
        try:
            await self.reconcile(reference, rows, attributes, attempt)
        finally:
            # With --fail-fast the next import waits for this one's outcomes: a failure among
            # them stops the run before another import is posted.
            release()

    async def reconcile(
        self, reference: str, rows: list[ChunkRow], attributes: dict[str, Any] | None, attempt: int
    ) -> None:
        may_resend = attempt == 0 and self.imp.resend_interrupted
        clean = attributes is not None and attributes.get("status") == "completed"
        clean = clean and attributes is not None and not attributes.get("errors_count")
        if self.imp.readback == "none" and clean:
            # Every row of a clean import was created; ids are not read back (the report says so).
            self.ctx.stats.ids_read_back = False
            self.settle_rows([(r, Outcome(RowStatus.CREATED, None, r.customer_id, attempts=1)) for r in rows])
            self.ctx.stats.rows_reconciled += len(rows)
            self.bj.set_state(reference, "reconciled")
            return
        customers = Counter(r.customer_id for r in rows)
        use_export = self.imp.readback == "export" or (
            self.imp.readback in ("auto", "none") and len(rows) > self.imp.export_above
        )
        reader: Reader = self.exporter if use_export else self.lister
        self.ctx.stats.readback = "export" if use_export else "list"
        try:
            found: list[Found] = await reader.read(dict(customers))
        except LookupFailed as exc:
            detail = (
                f"import {reference} ended {(attributes or {}).get('status')}, and reading back what it "
                f"created failed ({exc.code}: {exc.detail}); the next run looks these rows up first"
            )
            self.fail_rows(rows, UNKNOWN, detail, exc.http_status)
            return
        finally:
            self._request_counts()
        result = reconcile(reference, rows, found, attributes, may_resend=may_resend)
        self.settle_rows(result.settled)
        self.ctx.stats.rows_reconciled += len(result.settled)
        if result.resend:
            self.ctx.stats.rows_resent += len(result.resend)
            log.info("imports.rows_to_resend", reference=reference, rows=len(result.resend))
            # Rebuilt from the journal: the inputs were dropped from memory once posted.
            sent = {row.seq: row for row in self.bj.rows_of(reference)}
            self.resend.extend(sent[row.seq] for row in result.resend)
        self.bj.set_state(reference, "reconciled")

    # -- the phases -----------------------------------------------------------------------------
    async def wait_for_orphans(self) -> None:
        """Imports earlier runs left unfinished: wait for them to end (their rows are gone from
        the journal, their pairings are `sending`), so the pre-check sees what they created."""
        for record in self.bj.unfinished_elsewhere(self.ctx.run_id, self.ctx.target):
            import_id = await self._import_id(record, "of an earlier run", "nothing was sent")
            if import_id is not None:
                log.info(
                    "imports.waiting_for_earlier_import", reference=record.reference, import_id=import_id
                )
                await self.poller.wait(import_id, lambda _: None)
            self.bj.set_state(record.reference, "orphaned")

    async def _import_id(self, record: ImportRecord, whose: str, sent: str) -> str | None:
        """The import's id: from the journal, or found by its reference when its POST's answer
        was lost (None: it never landed). A failed look-up aborts: nothing may be re-posted."""
        if record.import_id is not None:
            return record.import_id
        try:
            return await self.submitter.find(record.reference)
        except LookupFailed as exc:
            raise Abort(
                f"could not look up import {record.reference} {whose} ({exc.code}: "
                f"{exc.detail}); {sent}; run again later"
            ) from None

    async def resume(self) -> None:
        """Imports a killed or stopped run had started: never posted again, polled and reconciled."""
        await self.wait_for_orphans()
        self.resuming = True
        try:
            for record in self.bj.unfinished(self.ctx.run_id):
                if self.halt.is_set():
                    return
                await self._resume_one(record)
            await self.drain()
        finally:
            self.resuming = False

    async def _resume_one(self, record: ImportRecord) -> None:
        rows = self.bj.rows_of(record.reference)
        import_id = await self._import_id(record, "of the interrupted run", "nothing was sent again")
        if import_id is None:
            # Never landed: its rows are still open and go through the pre-check again.
            self.bj.set_state(record.reference, "not_found")
            log.info("imports.resume_not_found", reference=record.reference, rows=len(rows))
            return
        if record.import_id is None:
            self.bj.set_posted(record.reference, import_id)
        self.ctx.stats.imports_resumed += 1
        log.info("imports.resumed", reference=record.reference, import_id=import_id, state=record.state)
        if record.state == "processed":
            attributes = await self.poller.wait(import_id, lambda _: None)
            await self.reconcile(record.reference, rows, attributes, record.attempt)
            return
        await self.slots.acquire()
        self._spawn(self.track(record.reference, import_id, rows, record.attempt, self._holding_slot()))

    async def drain(self) -> None:
        while self.tracks:
            await asyncio.wait(set(self.tracks))

    async def produce(self) -> None:
        """Checks the run's open rows (pre-check) into the buffer, holding back while it is full.

        Two stages: one reads the open rows into batches and starts looking up each batch's
        e-mails at once; the other checks the batches in order. A batch's look-up thus runs
        while the batch before it is checked, and at most one batch waits between them."""
        queue: asyncio.Queue[tuple[list[tuple[int, Pairing]], asyncio.Task[None] | None] | None]
        queue = asyncio.Queue(maxsize=1)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read_batches(queue), name="importer-imports-read")
                group.create_task(self._check_batches(queue), name="importer-imports-check")
        finally:
            self.producing = False
            self.wake.set()

    async def _read_batches(
        self, queue: asyncio.Queue[tuple[list[tuple[int, Pairing]], asyncio.Task[None] | None] | None]
    ) -> None:
        batch: list[tuple[int, Pairing]] = []
        emails: list[str] = []

        async def hand_over() -> None:
            nonlocal batch, emails
            self.queued += len(batch)
            await queue.put((batch, self.wallets.prefetch(emails)))
            batch, emails = [], []

        try:
            async for item in self._open_rows():
                if self.check_stopped:
                    break
                self.last_seq = item[0]
                if item[0] in self.settled_here:
                    continue  # settled by a resumed import just now (a failed row waits for the next run)
                batch.append(item)
                if item[1].customer_email:
                    emails.append(item[1].customer_email)
                if len(batch) >= (EMAIL_CHECK_BATCH if emails else CHECK_BATCH):
                    await hand_over()
            if batch and not self.check_stopped:
                await hand_over()
        finally:
            await queue.put(None)

    async def _check_batches(
        self, queue: asyncio.Queue[tuple[list[tuple[int, Pairing]], asyncio.Task[None] | None] | None]
    ) -> None:
        taken = 0
        while (handed := await queue.get()) is not None:
            batch, lookup = handed
            self.queued -= len(batch)
            started = time.monotonic()
            if lookup is not None:
                # A failed look-up is asked again, and answered or failed, by prepare below.
                with contextlib.suppress(Exception):
                    await lookup
            if self.check_stopped:
                continue  # drain: the reader stops at its next row
            try:
                prepared = await self.preparer.prepare(batch)
            finally:
                self.wallets.forget(p.customer_email for _, p in batch if p.customer_email)
            self.ctx.stats.precheck_s += time.monotonic() - started
            self._request_counts()
            self.ctx.stats.precheck = (
                "wallet reads" if self.wallets.snapshot_records is None else "one export"
            )
            self.settle_prepared(prepared.settled)
            for work in prepared.work:
                if self.ctx.max_rows is not None and taken >= self.ctx.max_rows:
                    self.check_stopped = True
                    break
                taken += 1
                self.buffer.append(chunk_row(work.seq, work.pairing, work.customer_id, work.key))
            self.wake.set()
            while len(self.buffer) >= self.buffer_max and not self.halt.is_set():
                self.room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.room.wait(), WAKE_S)
            if self.halt.is_set():
                self.check_stopped = True

    def _rule(self) -> SizingRule:
        imp = self.imp
        return SizingRule(
            imp.sizing,
            self.chunk_size,
            imp.min_chunk_size,
            imp.chunk_target_s,
            imp.max_in_flight,
            imp.min_chunk_s,
            imp.last_wave_s,
        )

    def _more(self) -> int | None:
        """Rows still to be checked (sizing.Moment.more); None while the input is being read."""
        if not self.producing:
            return 0
        if self.feed is not None and not self.feed.done.is_set():
            return None
        now = time.monotonic()
        if self.more_cache is None or now - self.more_cache[0] >= MORE_EVERY_S:
            self.more_cache = (now, self.bj.count_open_after(self.ctx.run_id, self.last_seq))
        return self.more_cache[1] + self.queued

    def moment(self) -> Moment:
        now, pace = asyncio.get_running_loop().time(), self.pace.pace or 0.0
        remaining = [
            # What the last poll said, less what the server did since at the measured pace.
            max(0, round(size - self.processed.get(i, 0) - pace * (now - self.seen_at.get(i, now))))
            for i, size in self.sizes.items()
        ]
        return Moment(
            buffered=len(self.buffer),
            more=self._more(),
            free_slots=self.imp.max_in_flight - self.in_flight,
            remaining=remaining,
            pace=self.pace.pace,
        )

    async def feed_imports(self) -> None:
        """Posts the buffered rows as imports, as sizing.py sizes them, until none are left."""
        while not self.halt.is_set():
            self.wake.clear()
            if not self.producing and not self.buffer:
                return
            size = next_chunk(self._rule(), self.moment())
            if size:
                release = await self.claim_slot()  # free now: next_chunk saw a free slot
                if release is None:
                    return  # stopped; the buffered rows stay open for the next run
                chunk = self.buffer[:size]
                del self.buffer[:size]
                self.room.set()
                reference = self.journal_chunk(chunk, 0, release)
                # Posted in the background: a POST of thousands of inputs takes a while, and the
                # next free slot must not wait for it.
                self._spawn(self.post(reference, chunk, 0, release))
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), WAKE_S)

    async def _open_rows(self) -> AsyncIterator[tuple[int, Pairing]]:
        """The run's open rows in input order; with a streaming intake, waits for more rows until
        the whole input is read."""
        last = -1
        while not self.halt.is_set():
            reading = self.feed is not None and not self.feed.done.is_set()  # before the read
            page = self.bj.open_rows_after(self.ctx.run_id, last)
            for item in page:
                yield item
            if page:
                last = page[-1][0]
                continue
            if not reading:
                if self.feed is not None:  # the whole input is read now: the real total
                    self.ctx.progress.total = self.ctx.stats.rows_settled + self.ctx.journal.count_open(
                        self.ctx.run_id
                    )
                return
            await asyncio.sleep(STREAM_WAIT_S)

    def _too_many_invalid(self) -> bool:
        """With a streaming intake, the invalid-row check before each import (rows read so far)."""
        if self.feed is None:
            return False
        if self.feed.error is not None:
            self.stream_stop = "reading the input failed; no further import was posted"
            return True
        # Counting every row of the run takes tens of ms at 100,000 rows, on the event loop: at
        # most once a second while reading, then once more as soon as the input is read (the
        # final ratio), and never again.
        now, reading = time.monotonic(), not self.feed.done.is_set()
        last = self.invalid_checked
        if last is not None and (
            (reading and now - last[0] < INVALID_CHECK_S) or (not reading and not last[1])
        ):
            return self.stream_stop is not None
        self.invalid_checked = (now, reading)
        counts = self.ctx.journal.count_rows(self.ctx.run_id)
        read = sum(counts.values())
        invalid = counts.get(RowStatus.INVALID.value, 0)
        if read and invalid / read > self.ctx.settings.max_invalid_ratio:
            self.stream_stop = (
                f"{invalid} of the first {read} rows are invalid, more than max_invalid_ratio "
                f"{self.ctx.settings.max_invalid_ratio:.0%}; no further import was posted"
            )
            return True
        return False

    async def send_again(self) -> None:
        while self.resend and not self.halt.is_set():
            rows, self.resend = self.resend, []
            for chunk in cut(rows, self.chunk_size):
                if self.halt.is_set():
                    break
                await self.launch(chunk, 1)
            await self.drain()

    async def main(self) -> None:
        await self.resume()
        if not self.halt.is_set():
            async with asyncio.TaskGroup() as group:
                group.create_task(self.produce(), name="importer-imports-check")
                group.create_task(self.feed_imports(), name="importer-imports-feed")
        await self.drain()
        await self.send_again()

    def follow_token(self, token: str) -> None:
        """The REST path's rule (dispatcher.follow_token): the token's `test` claim picks the
        preset when none was given; both the REST and the polling windows take its numbers."""
        rl = self.ctx.settings.rate_limit
        choice = choose_preset(rl.preset, decode_claims(token), force=self.ctx.force)
        if choice.warning:
            log.warning("run.preset_mismatch", warning=choice.warning, preset=choice.preset)
        self.ctx.stats.rate_limit_preset = choice.preset
        burst, average = rl.limits_for(choice.preset)
        self.windows.retune(
            WindowSpec(burst, rl.burst_window_s, average, rl.average_window_s, rl.safety_margin_s)
        )
        self.poll_windows.retune(self._poll_spec(choice.preset))

    async def run(self) -> None:
        try:
            token = await self.tokens.get()
        except AuthFailed as exc:
            self.abort = str(exc)
            return
        self.follow_token(token)  # may refuse (PresetRefused) before any /api request
        self.stamps.seed(self.windows)
        ticker = asyncio.create_task(self.ticker(), name="importer-imports-progress")
        progress = asyncio.create_task(self.ctx.progress.ticker(), name="importer-progress")
        main = asyncio.create_task(self.guarded(self.main()), name="importer-imports")
        stop_watch = asyncio.create_task(self.ctx.stop.wait())
        halt_watch = asyncio.create_task(self.halt.wait())
        try:
            await asyncio.wait({main, stop_watch, halt_watch}, return_when=asyncio.FIRST_COMPLETED)
            if not main.done():
                # Stop: no new import; the running ones get the grace period to finish and be
                # reconciled. Any left are in the journal: the next run polls them, never re-posts.
                self.halt.set()
                grace = 0.0 if self.abort else self.ctx.settings.timeouts.shutdown_grace_s
                await asyncio.wait({main, *self.tracks}, timeout=grace)
            for task in (main, *self.tracks):
                task.cancel()
            await asyncio.gather(main, *self.tracks, return_exceptions=True)
        finally:
            for helper in (ticker, progress, stop_watch, halt_watch):
                helper.cancel()
            await asyncio.gather(ticker, progress, stop_watch, halt_watch, return_exceptions=True)
            await self.fetcher.aclose()
            await self.gate.aclose()
            await self.poll_gate.aclose()
            self.stamps.flush()
            self.ctx.stats.paused_s = self.gate.paused_s
            self._request_counts()
        log.info("imports.done", **self.snapshot())
        if self.crash is not None:
            raise self.crash


async def dispatch_imports(
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
    """Settle the run's open rows through the Imports API (dispatcher.dispatch's contract)."""
    if dry_run:
        raise ValueError("dry runs take the REST path (importer.bulk.select_dispatch)")
    stats = BulkStats()
    # Imports a killed run had started are found in the journal even when no row is open.
    has_unfinished = bool(BulkJournal(journal).unfinished(run_id)) or run_id in FEEDS
    if total == 0 and not has_unfinished:
        return stats
    started = time.monotonic()
    progress = run_progress(settings, journal, run_id, total, bar=progress_bar)
    http = run_sender(
        sender,
        settings.commercelayer.base_url or target,
        concurrency=settings.concurrency + settings.imports.max_in_flight + 1,
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
                max_rows=max_rows,
                fail_fast=fail_fast,
                force=force,
                recreate_undone=recreate_undone,
            )
            run = BulkRun(ctx, sending)
            with Checkpointer(journal):  # the loop's commits never wait for a checkpoint
                await run.run()
    stats.stream_stop = run.stream_stop
    stats.elapsed_s = time.monotonic() - started
    if run.abort is not None:
        raise RunAborted(run.abort, stats=stats.as_dict())
    return stats
