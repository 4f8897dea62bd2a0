"""A cheaper pre-check for big runs: one export of the whole organization's wallets.

The REST path reads the wallets of every 100 customers before it sends (prepare.py), which
costs one uncacheable read per 100 rows: for 100,000 rows, 1,000 reads, 5 minutes at live
limits, far longer than the imports themselves. On a first migration the organization holds
few customer_payment_sources, so the imports strategy first asks how many there are (one read)
and, when they fit in `imports.precheck_snapshot_max` (one export's worth), reads them all with
one export and answers every chunk's wallet question from that snapshot. More than that, or an
export that fails, and it falls back to the per-chunk wallet reads.

The snapshot is taken after the run's resumed imports are reconciled and before its first new
import; a pairing someone else creates after it is not seen (docs/exactly-once.md states the
same window for REST, here it is the run's length).

E-mails are resolved the same way: one GET answers 25 addresses (`lookups.email_batch`), so a
file of 50,000 e-mail rows costs 2,000-4,000 uncacheable reads before anything is sent, the
bulk of the run at live limits. With `imports.email_lookup: auto` a batch of addresses that
would take more than three GETs goes as one export of customers (`filters.email_in`, every
address as written and in lower case, matched ignoring case exactly as the GETs are): about
three requests for up to 2,500 addresses. An export that fails falls back to the GETs for the
rest of the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from urllib.parse import quote

import structlog

from importer.bulk.readback import EXPORT_PURPOSE, PRECHECK, ExportFailed, ExportReader
from importer.client import ApiClient
from importer.lookups import email_forms, match_emails
from importer.planner import CPS_PATH
from importer.wallets import LookupFailed, WalletReader
from importer.wire import ApiRequest, Ok

log = structlog.get_logger("importer")
# An export costs about three requests (create, a poll or two); past this many GETs it is cheaper.
EMAIL_GETS_BEFORE_EXPORT = 3


def count_request() -> ApiRequest:
    params = [("page[size]", "1"), ("fields[customer_payment_sources]", "id")]
    return ApiRequest(
        "GET", CPS_PATH, "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in params)
    )


class SnapshotWalletReader(WalletReader):
    def __init__(
        self,
        client: ApiClient,
        exporter: ExportReader,
        *,
        wallet_batch: int,
        email_batch: int,
        snapshot_max: int,
        email_lookup: str = "auto",
    ) -> None:
        super().__init__(client, wallet_batch=wallet_batch, email_batch=email_batch)
        self._exporter = exporter
        self._email_lookup = email_lookup  # auto | export | list
        self._snapshot_max = snapshot_max
        self._by_customer: dict[str, dict[str, str]] | None = None
        self._tried = False
        self.snapshot_records: int | None = None
        self.gets = 0  # the pre-check's own reads (count, wallets, e-mails by GET)
        self.email_exports = 0  # batches of e-mails resolved through an export
        self._prefetched: dict[str, tuple[tuple[str, str], ...]] = {}

    @property
    def export_requests(self) -> int:
        """The pre-check's requests through the exporter (shared with the read-back)."""
        return self._exporter.requests_by[PRECHECK]

    @property
    def requests(self) -> int:
        """What the pre-check cost, for the summary."""
        return self.gets + self.export_requests

    async def _get(self, request: ApiRequest) -> object:
        self.gets += 1
        return await super()._get(request)

    async def _load(self) -> None:
        self._tried = True
        if self._snapshot_max <= 0:
            return
        self.gets += 1
        answer = await self._client.request(count_request(), self._client.attempts(), retry_ambiguous=True)
        body = answer.response.body if isinstance(answer.verdict, Ok) and answer.response else None
        meta = body.get("meta") if isinstance(body, dict) else None
        count = meta.get("record_count") if isinstance(meta, dict) else None
        if not isinstance(count, int) or count > self._snapshot_max:
            log.info("imports.precheck", mode="wallet reads", existing_records=count)
            return
        purpose = EXPORT_PURPOSE.set(PRECHECK)
        try:
            found = await self._exporter.everything() if count else []
        except (ExportFailed, LookupFailed) as exc:
            log.warning("imports.precheck_snapshot_failed", reason=str(exc), action="per-chunk wallet reads")
            return
        finally:
            EXPORT_PURPOSE.reset(purpose)
        by_customer: dict[str, dict[str, str]] = {}
        for record in found:
            if record.customer_id is None:
                continue
            wallet = by_customer.setdefault(record.customer_id, {})
            for ref in record.source_refs:
                wallet.setdefault(f"id:{record.customer_id}|{ref}", record.id)  # the oldest wins
        self._by_customer = by_customer
        self.snapshot_records = len(found)
        log.info("imports.precheck", mode="one export", existing_records=len(found))

    def prefetch(self, emails: Sequence[str]) -> asyncio.Task[None] | None:
        """Start looking these addresses up now (the next batch's, while this one is checked);
        `customers` answers them from what was found. None: nothing to look up."""
        if not emails:
            return None
        return asyncio.create_task(self._prefetch(list(dict.fromkeys(emails))), name="importer-emails")

    async def _prefetch(self, emails: list[str]) -> None:
        self._prefetched.update(await self._resolve(emails))

    def forget(self, emails: Iterable[str]) -> None:
        """Drop prefetched answers a batch did not ask for (they were cached by prepare.py)."""
        for email in emails:
            self._prefetched.pop(email, None)

    async def customers(self, emails: Sequence[str]) -> dict[str, tuple[tuple[str, str], ...]]:
        known = {e: self._prefetched.pop(e) for e in emails if e in self._prefetched}
        rest = [e for e in dict.fromkeys(emails) if e not in known]
        return {**known, **(await self._resolve(rest))} if rest else known

    async def _resolve(self, emails: Sequence[str]) -> dict[str, tuple[tuple[str, str], ...]]:
        forms = email_forms(emails)
        gets = -(-len(forms) // max(1, self.email_batch))
        if self._email_lookup == "list" or not forms:
            return await super().customers(emails)
        if self._email_lookup == "auto" and gets <= EMAIL_GETS_BEFORE_EXPORT:
            return await super().customers(emails)
        purpose = EXPORT_PURPOSE.set(PRECHECK)
        try:
            found = await self._exporter.customers_by_email(forms)
        except ExportFailed as exc:
            log.warning("imports.email_export_failed", reason=str(exc), action="e-mail look-ups by GET")
            self._email_lookup = "list"
            return await super().customers(emails)
        finally:
            EXPORT_PURPOSE.reset(purpose)
        self.email_exports += 1
        return match_emails(emails, found)

    def existing_count(self, customer_id: str) -> int | None:
        """Entries the customer held when the snapshot was taken; None without a snapshot."""
        if self._by_customer is None:
            return None
        return len(set(self._by_customer.get(customer_id, {}).values()))

    async def read(self, customer_ids: Sequence[str], tokens: Sequence[str] = ()) -> dict[str, str]:
        if not self._tried:
            await self._load()
        if self._by_customer is None:
            return await super().read(customer_ids, tokens)
        # The snapshot holds every entry: a `tokens` narrowing (lookups.token_filter) only
        # makes the per-chunk request smaller, so the whole wallets answer it as well.
        index: dict[str, str] = {}
        for customer in customer_ids:
            index.update(self._by_customer.get(customer, {}))
        return index
