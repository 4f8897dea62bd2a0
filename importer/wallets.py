"""Wallet and e-mail look-ups over the API (the I/O half of lookups.py).

`WalletReader.read(customer_ids)` pages through the wallets of up to `wallet_batch` customers
and returns the pairing-key index. `Rechecker` is for POSTs whose outcome is unknown (a 5xx, a
timeout, a dropped connection): before such a POST is sent again its customer's wallet is read.
Workers that need a check at the same moment share one request: while a look-up is in flight,
new customers queue up and go together in the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from functools import partial

from importer.client import ApiClient
from importer.lookups import (
    WalletEntry,
    batches,
    customers_by_email,
    email_forms,
    emails_found,
    match_emails,
    page_count,
    wallet_by_customers,
    wallet_entries,
    wallet_records,
)
from importer.wire import ApiRequest, Ok, Retriable, RowRejected

# Pages of one look-up we follow at most: 25 entries a page, so 400 pages is 10,000 wallet entries
# for one batch of customers, far more than any real wallet; past it something is wrong.
MAX_PAGES = 400


class LookupFailed(Exception):
    """A look-up got no usable answer. Carries what the row's outcome should say."""

    def __init__(self, http_status: int | None, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.http_status = http_status
        self.code = code
        self.detail = detail


class WalletReader:
    def __init__(self, client: ApiClient, *, wallet_batch: int, email_batch: int) -> None:
        self._client = client
        self.wallet_batch = wallet_batch
        self.email_batch = email_batch

    async def fetch(self, request: ApiRequest) -> object:
        """One GET's body. Raises LookupFailed (a 404 carries http_status 404)."""
        return await self._get(request)

    async def _get(self, request: ApiRequest) -> object:
        answer = await self._client.request(request, self._client.attempts(), retry_ambiguous=True)
        verdict = answer.verdict
        if isinstance(verdict, Ok) and answer.response is not None:
            return answer.response.body
        if isinstance(verdict, RowRejected | Retriable):
            raise LookupFailed(verdict.http_status, verdict.code, verdict.detail)
        raise LookupFailed(None, "LOOKUP_FAILED", "the look-up got no usable answer")

    async def _pages(self, build: Callable[[int], ApiRequest]) -> list[object]:
        bodies = [await self._get(build(1))]
        pages = min(page_count(bodies[0]), MAX_PAGES)
        for number in range(2, pages + 1):
            bodies.append(await self._get(build(number)))
        return bodies

    async def customers(self, emails: Sequence[str]) -> dict[str, tuple[tuple[str, str], ...]]:
        """Each address → the customers (id, stored e-mail) whose e-mail equals it ignoring case.

        Asks for every address as written and in lower case (lookups.py says why)."""
        found: list[tuple[str, str]] = []
        for batch in batches(email_forms(emails), self.email_batch):
            for body in await self._pages(partial(customers_by_email, batch)):
                found.extend(emails_found(body))
        return match_emails(emails, found)

    async def read(self, customer_ids: Sequence[str], tokens: Sequence[str] = ()) -> dict[str, str]:
        """Pairing key → existing wallet entry id, for these customers' wallets.

        `tokens`: when given (see lookups.token_filter), only entries with these tokens are read."""
        return {key: entry.id for key, entry in (await self.read_entries(customer_ids, tokens)).items()}

    async def read_entries(
        self, customer_ids: Sequence[str], tokens: Sequence[str] = (), *, values: bool = False
    ) -> dict[str, WalletEntry]:
        """Pairing key → existing wallet entry. `values`: with the reference, reference_origin and
        metadata that `on_existing: update` compares with the row's (asked for only then)."""
        index: dict[str, WalletEntry] = {}
        for batch in batches(list(customer_ids), self.wallet_batch):
            only = batch[0] if len(batch) == 1 else None
            for body in await self._pages(partial(wallet_by_customers, batch, tokens=tokens, values=values)):
                for key, entry in wallet_records(wallet_entries(body), only).items():
                    index.setdefault(key, entry)
        return index


class Rechecker:
    """Coalesces "does this pairing exist now?" questions into shared wallet look-ups."""

    def __init__(self, reader: WalletReader) -> None:
        self._reader = reader
        self._waiting: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def find(self, customer_id: str, key: str) -> str | None:
        """The id of the wallet entry with this pairing key, or None. Raises LookupFailed."""
        future = self._waiting.get(customer_id)
        if future is None:
            future = self._waiting[customer_id] = asyncio.get_running_loop().create_future()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="importer-recheck")
        index = await asyncio.shield(future)
        return index.get(key)

    async def _run(self) -> None:
        while self._waiting:
            take = list(self._waiting)[: self._reader.wallet_batch]
            futures = {c: self._waiting.pop(c) for c in take}
            try:
                index = await self._reader.read(take)
            except LookupFailed as exc:
                _fail(futures.values(), exc)
                continue
            except BaseException as exc:  # cancelled, or Abort: the waiters must not hang
                _fail(
                    futures.values(),
                    exc
                    if isinstance(exc, Exception)
                    else LookupFailed(None, "LOOKUP_CANCELLED", "the look-up was cancelled"),
                )
                raise
            for future in futures.values():
                if not future.done():
                    future.set_result(index)

    async def aclose(self) -> None:
        if self._runner is not None and self._runner.done() and not self._runner.cancelled():
            self._runner.exception()  # retrieved: the waiters already got it
        if self._runner is not None and not self._runner.done():
            self._runner.cancel()
            with contextlib.suppress(BaseException):
                await self._runner


def _fail(futures: Iterable[asyncio.Future[dict[str, str]]], exc: Exception) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
            future.exception()  # marks it retrieved: a waiter that was cancelled meanwhile is fine
