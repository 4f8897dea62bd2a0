"""`undo_dispatch()`: delete the wallet entries an undo's rows name, exactly once, at the full rate.

    journal.open_undo_rows ─▶ checker ──(queue)──▶ workers
                              per 25 rows: the journal,      DELETE, then on an unknown outcome
                              then one GET by id             a GET of that record before any resend

The DELETE protocol mirrors the POST's (docs/exactly-once.md):

1. the journal's `deletions` says the record was deleted before → `already_deleted` (or
   `deleted`, when it was this very undo), no request;
2. one `GET …?filter[q][id_in]=…&fields[customer_payment_sources]=metadata` per 25 rows: a
   record not found is `already_deleted` (or `deleted` when our own DELETE was in flight when
   the process died); a record whose `metadata.importer_key` is not its pairing's is `skipped`;
3. `deleting` is committed before the DELETE leaves; 204 → `deleted`, 404 → `already_deleted`;
   a 5xx, timeout or dropped connection is followed by a GET of the record: gone → `deleted`,
   still there → the DELETE is sent again (within retry.max_attempts).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from importer.auth import AuthFailed
from importer.config import Settings
from importer.errors import RunAborted
from importer.journal import Journal
from importer.lookups import PAGE_SIZE, metadata_by_id, record_by_id, records_by_ids
from importer.models import Outcome, Pairing, RowStatus
from importer.planner import CPS_ITEM, CPS_PATH
from importer.progress import RunProgress, run_progress
from importer.retry import Retrier
from importer.session import SEND_STAMP_BATCH, ApiSession, SendStamps, open_session
from importer.stats import DispatchStats
from importer.supervise import Supervised
from importer.transport import run_sender
from importer.undo_plan import NOT_OURS, expected_importer_key, ownership_problem
from importer.wallets import LookupFailed, WalletReader
from importer.wire import ApiRequest, Ok, Retriable, RowRejected, Sender

_DONE = None


class _Item:
    __slots__ = ("customer_id", "expected", "key", "record_id", "seq", "was_deleting")

    def __init__(
        self, seq: int, record_id: str | None, customer_id: str, key: str, pairing_json: str
    ) -> None:
        # "" until known: a row created without its id read back (see `find_ids`)
        self.seq, self.record_id, self.customer_id, self.key = seq, record_id or "", customer_id, key
        self.expected = expected_importer_key(Pairing.from_json(pairing_json), customer_id)
        self.was_deleting = False  # an earlier process sent a DELETE whose answer it never saw


def _outcome(item: _Item, status: RowStatus, **kw: Any) -> Outcome:
    return Outcome(status, item.record_id or None, item.customer_id, **kw)


def known_outcome(ledger: Journal, target: str, item: _Item, run_id: str) -> Outcome | None:
    """The outcome the journal already knows for this record (an earlier undo deleted it)."""
    known = ledger.deletion_state(target, item.record_id) if item.record_id else None
    if known is None or known[0] not in ("deleted", "already_deleted"):
        return None
    state, by_run = known
    if by_run == run_id:  # this undo, before it was stopped
        return _outcome(item, RowStatus.DELETED if state == "deleted" else RowStatus.ALREADY_DELETED)
    return _outcome(
        item,
        RowStatus.ALREADY_DELETED,
        error_code="UNDONE_BEFORE",
        error_detail=f"already deleted by undo run {by_run}; nothing sent",
    )


def settle_from_journal(journal: Journal, ledger: Journal, run_id: str, target: str) -> int:
    """Settle, with no request, the rows whose record the journal knows is deleted (a repeated
    undo, or the part of a resumed one that was done). Returns how many rows are left open."""
    done: list[tuple[int, Outcome]] = []
    for row in journal.open_undo_rows(run_id):
        item = _Item(*row)
        outcome = known_outcome(ledger, target, item, run_id)
        if outcome is not None:
            done.append((item.seq, outcome))
    journal.set_many_outcomes(run_id, done)
    return journal.count_open_undo(run_id)


class _Undo(Supervised):
    def __init__(
        self,
        settings: Settings,
        journal: Journal,
        ledger: Journal,
        run_id: str,
        target: str,
        api: ApiSession,
        stamps: SendStamps,
        *,
        dry_run: bool,
        stop: asyncio.Event,
        progress: RunProgress,
        stats: DispatchStats,
    ) -> None:
        self.settings, self.journal, self.ledger = settings, journal, ledger
        self.run_id, self.target, self.api, self.stamps = run_id, target, api, stamps
        self.dry_run, self.stop, self.progress, self.stats = dry_run, stop, progress, stats
        self.reader = WalletReader(
            api.client, wallet_batch=settings.lookups.wallet_batch, email_batch=settings.lookups.email_batch
        )
        self.retrier = Retrier(api.backoff, asyncio.sleep, stats)  # as create.py: one retry helper
        self.queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=2 * settings.concurrency)
        self.start_supervision()

    # -- outcomes ---------------------------------------------------------------------------
    def settle(self, seq: int, outcome: Outcome) -> None:
        self.journal.set_outcome(self.run_id, seq, outcome)
        self.stats.rows_settled += 1
        self.progress.settled(seq, outcome)
        self.stamps.flush(at_least=SEND_STAMP_BATCH)

    def gone(self, item: _Item, ours: bool, http_status: int | None = None, attempts: int = 0) -> Outcome:
        """The record is not there (any more): `deleted` if our DELETE did it, else `already_deleted`."""
        state = "deleted" if ours else "already_deleted"
        if not self.dry_run:
            self.ledger.mark_deleted(self.target, item.record_id, item.key, self.run_id, state)
        if ours:
            return _outcome(item, RowStatus.DELETED, http_status=http_status, attempts=attempts)
        return _outcome(
            item,
            RowStatus.ALREADY_DELETED,
            http_status=http_status or 404,
            error_code="RECORD_NOT_FOUND",
            error_detail="the record was not found: deleted earlier (by hand, or by another undo)",
            attempts=attempts,
        )

    # -- checking ---------------------------------------------------------------------------
    async def check_chunks(self) -> None:
        chunk: list[_Item] = []
        for row in self.journal.open_undo_rows(self.run_id):
            chunk.append(_Item(*row))
            if len(chunk) >= PAGE_SIZE:
                await self.check(chunk)
                chunk = []
                if self.halt.is_set():
                    return
        if chunk and not self.halt.is_set():
            await self.check(chunk)
        for _ in range(self.settings.concurrency):
            await self.queue.put(_DONE)

    async def find_ids(self, chunk: list[_Item]) -> list[_Item]:
        """Rows created without a known record id (imports without read-back): their record is
        found by pairing in the customers' wallets (one look-up per wallet_batch customers)."""
        missing = [item for item in chunk if not item.record_id]
        if not missing:
            return chunk
        try:
            index = await self.reader.read(sorted({item.customer_id for item in missing}))
        except LookupFailed as exc:
            for item in missing:
                self.settle(
                    item.seq,
                    _outcome(
                        item,
                        RowStatus.FAILED,
                        http_status=exc.http_status,
                        error_code=exc.code,
                        error_detail="finding the record by its pairing failed, nothing was sent: "
                        f"{exc.detail}",
                    ),
                )
            return [item for item in chunk if item.record_id]
        left = []
        for item in chunk:
            if not item.record_id:
                item.record_id = index.get(item.key, "")
                if not item.record_id:
                    self.settle(
                        item.seq,
                        _outcome(
                            item,
                            RowStatus.ALREADY_DELETED,
                            error_code="RECORD_NOT_FOUND",
                            error_detail="the run did not read back this record's id and no entry for its "
                            "pairing exists now: deleted earlier",
                        ),
                    )
                    continue
            left.append(item)
        return left

    async def check(self, chunk: list[_Item]) -> None:
        ask: list[_Item] = []
        for item in await self.find_ids(chunk):
            settled = known_outcome(self.ledger, self.target, item, self.run_id)
            if settled is not None:
                self.settle(item.seq, settled)
                continue
            known = self.ledger.deletion_state(self.target, item.record_id)
            item.was_deleting = known is not None and known[0] == "deleting"
            ask.append(item)
        if not ask:
            return
        try:
            found = metadata_by_id(await self.reader.fetch(records_by_ids([i.record_id for i in ask])))
        except LookupFailed as exc:
            for item in ask:
                self.settle(
                    item.seq,
                    _outcome(
                        item,
                        RowStatus.FAILED,
                        http_status=exc.http_status,
                        error_code=exc.code,
                        error_detail=f"checking the record before deleting it failed, nothing was sent: "
                        f"{exc.detail}",
                    ),
                )
            return
        for item in ask:
            metadata = found.get(item.record_id)
            if metadata is None:
                if item.was_deleting:
                    self.stats.ambiguous_outcomes += 1
                self.settle(item.seq, self.gone(item, ours=item.was_deleting))
                continue
            problem = ownership_problem(metadata, item.expected)
            if problem is not None:
                self.settle(
                    item.seq, _outcome(item, RowStatus.SKIPPED, error_code=NOT_OURS, error_detail=problem)
                )
            elif self.dry_run:
                self.settle(item.seq, _outcome(item, RowStatus.WOULD_DELETE))
            else:
                await self.queue.put(item)

    # -- deleting ---------------------------------------------------------------------------
    async def work(self) -> None:
        while (item := await self.queue.get()) is not None:
            if self.halt.is_set():
                continue  # left pending: reported not_attempted, resumed next time
            self.settle(item.seq, await self.delete(item))

    async def delete(self, item: _Item) -> Outcome:
        client = self.api.client
        self.ledger.mark_deleting(self.target, item.record_id, item.key, self.run_id)
        request = ApiRequest("DELETE", f"{CPS_PATH}/{item.record_id}", template=CPS_ITEM)
        attempts = client.attempts()
        while True:
            answer = await client.request(request, attempts, retry_ambiguous=False)
            verdict = answer.verdict
            status = answer.response.status if answer.response is not None else None
            if isinstance(verdict, Ok):
                return self.gone(item, ours=True, http_status=status, attempts=attempts.sent)
            if isinstance(verdict, RowRejected):
                if verdict.http_status == 404:
                    return self.gone(item, ours=False, http_status=404, attempts=attempts.sent)
                # Refused: nothing was deleted. `deleting` stays, so the next undo looks first.
                return _outcome(
                    item,
                    RowStatus.FAILED,
                    http_status=verdict.http_status,
                    error_code=verdict.code,
                    error_detail=verdict.detail,
                    attempts=attempts.sent,
                )
            assert isinstance(verdict, Retriable)
            if verdict.ambiguous:
                try:
                    still = metadata_by_id(await self.reader.fetch(record_by_id(item.record_id)))
                except LookupFailed as exc:
                    if exc.http_status == 404:  # our DELETE landed; its answer was lost
                        self.stats.ambiguous_outcomes += 1
                        return self.gone(item, ours=True, attempts=attempts.sent)
                    return _outcome(
                        item,
                        RowStatus.FAILED,
                        http_status=verdict.http_status,
                        error_code="OUTCOME_UNKNOWN",
                        error_detail=f"{verdict.detail}; the record may be deleted and the look-up to "
                        f"check it failed ({exc.code}: {exc.detail}); the next undo checks again first",
                        attempts=attempts.sent,
                    )
                if item.record_id not in still:
                    self.stats.ambiguous_outcomes += 1
                    return self.gone(item, ours=True, attempts=attempts.sent)
            if not attempts.may_retry():
                return _outcome(
                    item,
                    RowStatus.FAILED,
                    http_status=verdict.http_status,
                    error_code=verdict.code,
                    error_detail=f"{verdict.detail} (gave up after {attempts.sent} attempts)",
                    attempts=attempts.sent,
                )
            await self.retrier.pause(attempts.counted)

    async def run(self) -> None:
        try:
            await self.api.tokens.get()
        except AuthFailed as exc:
            self.abort = str(exc)
            return
        self.stamps.seed(self.api.windows)  # what the run before left in the server's windows
        checker = asyncio.create_task(self.guarded(self.check_chunks()), name="importer-undo-check")
        workers = [
            asyncio.create_task(self.guarded(self.work()), name=f"importer-undo-{i}")
            for i in range(self.settings.concurrency)
        ]
        ticker = asyncio.create_task(self.progress.ticker(), name="importer-progress")
        watch: list[asyncio.Task[Any]] = [
            asyncio.create_task(self.stop.wait(), name="importer-stop"),
            asyncio.create_task(self.halt.wait(), name="importer-halt"),
        ]
        try:
            done_all: asyncio.Future[list[None]] = asyncio.gather(checker, *workers)
            watched: set[asyncio.Future[Any]] = {done_all, *watch}
            await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            if not done_all.done():
                self.halt.set()
                checker.cancel()
                while not self.queue.empty():
                    self.queue.get_nowait()
                for _ in workers:
                    with contextlib.suppress(asyncio.QueueFull):
                        self.queue.put_nowait(_DONE)
                grace = 0.0 if self.abort else self.settings.timeouts.shutdown_grace_s
                await asyncio.wait(workers, timeout=grace)
            for task in (checker, *workers):
                task.cancel()  # a DELETE cut off here stays `deleting`: looked up next time
            await asyncio.gather(checker, *workers, return_exceptions=True)
            with contextlib.suppress(asyncio.CancelledError):
                await done_all
        finally:
            for task in (ticker, *watch):
                task.cancel()
            await asyncio.gather(ticker, *watch, return_exceptions=True)
            await self.api.gate.aclose()
            self.stamps.flush()
            self.stats.paused_s = self.api.gate.paused_s
        if self.crash is not None:
            raise self.crash


async def undo_dispatch(
    settings: Settings,
    journal: Journal,
    ledger: Journal,
    run_id: str,
    *,
    target: str,
    dry_run: bool,
    stop: asyncio.Event,
    total: int,
    progress_bar: bool,
    sender: Sender | None = None,
) -> DispatchStats:
    """Settle the undo's open rows. `ledger` holds the deletions (the real journal, also for a
    dry run, which reads it and writes nothing). Raises RunAborted when the undo cannot go on."""
    stats = DispatchStats()
    if total == 0:
        return stats
    started = time.monotonic()
    progress = run_progress(settings, journal, run_id, total, bar=progress_bar)
    http = run_sender(
        sender,
        settings.commercelayer.base_url or target,
        concurrency=settings.concurrency,
        request_s=settings.timeouts.request_s,
        connect_s=settings.timeouts.connect_s,
    )
    async with http as sending, contextlib.AsyncExitStack() as stack:
        stack.enter_context(progress)
        # Send stamps go to the undo's own journal (the scratch one for a dry run, like `run`).
        stamps = SendStamps(journal, target, settings)
        api = open_session(
            settings,
            sending,
            stats,
            on_pause=progress.on_pause,
            on_resume=progress.on_resume,
            on_wait=progress.on_wait,
            on_send=stamps.note,
        )
        undo = _Undo(
            settings,
            journal,
            ledger,
            run_id,
            target,
            api,
            stamps,
            dry_run=dry_run,
            stop=stop,
            progress=progress,
            stats=stats,
        )
        await undo.run()
    stats.elapsed_s = time.monotonic() - started
    if undo.abort is not None:
        raise RunAborted(undo.abort, stats=stats.as_dict())
    return stats
