"""Read back what an import created: by paging the wallets, or through the Exports API.

Both readers answer the same question for a set of customers: which customer_payment_sources do
they hold now (id, customer, source, `metadata.importer_key`)? reconcile.py matches rows to them.

- `ListReader` pages `GET /api/customer_payment_sources?filter[q][customer_id_in]=…` (the wallet
  look-up of lookups.py): 25 records a request against the uncacheable budget. Fine for small
  imports.
- `ExportReader` asks `POST /api/exports` for the same customers (`filters.customer_id_in`),
  grouped so an export stays under `export_max_records`; a group the server finds too big is
  halved. The attachment is downloaded without the access token (it is a pre-signed link);
  a link that has expired (403/404/410) is answered by a new export, at most
  `EXPORT_LINK_RETRIES` times. An export that fails falls back to the list reader.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import structlog

from importer.bulk.reconcile import Found
from importer.bulk.sizing import PaceMeter, server_span_s
from importer.client import ApiClient
from importer.clock import Sleep
from importer.lookups import PAGE_SIZE, WALLET_FIELDS, WALLET_SORT, batches, page_count, wallet_entries
from importer.planner import CPS_PATH, IMPORTER_KEY
from importer.wallets import MAX_PAGES, LookupFailed
from importer.wire import ApiRequest, Ok, Retriable, RowRejected

EXPORTS_PATH = "/api/exports"
# One burst window for every export's polls: the server counts them per endpoint, not per record.
EXPORT_ITEM = f"{EXPORTS_PATH}/{{id}}"
EXPORT_LINK_RETRIES = 3
# Whose export requests these are, for the summary: the read-back's (the default) or the
# pre-check's. A context variable, because both run at once in different tasks.
PRECHECK, READBACK = "precheck", "readback"
EXPORT_PURPOSE: ContextVar[str] = ContextVar("importer_export_purpose", default=READBACK)
CPS_TYPE = "customer_payment_sources"
CUSTOMERS_TYPE = "customers"
EXPORT_FIRST_POLL_S = 0.25  # then doubled up to the poll interval
EXPORT_EXPECTED_WAIT_MAX_S = 60.0  # an expected duration past this is not trusted for the first poll
EXPORT_POLLS_MAX = 100_000  # a safety bound: at the poll interval that is hours
log = structlog.get_logger("importer")


class Reader(Protocol):
    async def read(self, customers: dict[str, int]) -> list[Found]:
        """`customers`: customer id → how many rows of the import name it."""
        ...


async def _get(client: ApiClient, request: ApiRequest) -> Any:
    answer = await client.request(request, client.attempts(), retry_ambiguous=True)
    verdict = answer.verdict
    if isinstance(verdict, Ok) and answer.response is not None:
        return answer.response.body
    if isinstance(verdict, RowRejected | Retriable):
        raise LookupFailed(verdict.http_status, verdict.code, verdict.detail)
    raise LookupFailed(None, "READBACK_FAILED", "the read-back got no usable answer")


def _metadata_key(metadata: Any) -> str | None:
    key = metadata.get(IMPORTER_KEY) if isinstance(metadata, dict) else None
    return str(key) if key is not None else None


def found_in_list(body: Any) -> list[Found]:
    data = body.get("data") if isinstance(body, dict) else None
    keys: dict[str, str | None] = {}
    for record in data if isinstance(data, list) else []:
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            attributes = record.get("attributes")
            keys[record["id"]] = _metadata_key(
                attributes.get("metadata") if isinstance(attributes, dict) else None
            )
    return [Found(e.id, e.customer_id, e.source_refs, keys.get(e.id)) for e in wallet_entries(body)]


def _related_id(record: dict[str, Any], name: str) -> str | None:
    value = record.get(f"{name}_id")
    if value is None and isinstance(record.get(name), dict):
        value = record[name].get("id")
    return str(value) if value is not None else None


def found_in_export(records: Any) -> list[Found]:
    """Records of an export file: flat, relationships as `<name>_id` (or nested `{id, type}`)."""
    out = []
    for record in records if isinstance(records, list) else []:
        if not isinstance(record, dict) or record.get("id") is None:
            continue
        refs = []
        source_type = record.get("payment_source_type")
        source = record.get("payment_source")
        if source_type is None and isinstance(source, dict):
            source_type = source.get("type")
        source_id = _related_id(record, "payment_source")
        if source_type and source_id:
            refs.append(f"{source_type}:{source_id}")
        if record.get("payment_source_token"):
            refs.append(f"token:{record['payment_source_token']}")
        metadata = record.get("metadata")
        out.append(
            Found(str(record["id"]), _related_id(record, "customer"), tuple(refs), _metadata_key(metadata))
        )
    return out


def readback_page(customer_ids: Sequence[str], page: int = 1) -> ApiRequest:
    """The wallet look-up of lookups.py, with `metadata` in the sparse fieldset: rows are matched
    to records by `metadata.importer_key`."""
    params = [
        ("filter[q][customer_id_in]", ",".join(customer_ids)),
        ("include", "customer,payment_source"),
        ("fields[customer_payment_sources]", f"{WALLET_FIELDS},metadata"),
        ("sort", WALLET_SORT),
        ("page[size]", str(PAGE_SIZE)),
    ]
    if page > 1:
        params.append(("page[number]", str(page)))
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe=',')}" for k, v in params)
    return ApiRequest("GET", CPS_PATH, query)


class ListReader:
    def __init__(self, client: ApiClient, *, batch: int) -> None:
        self._client = client
        self._batch = batch
        self.requests = 0

    async def read(self, customers: dict[str, int]) -> list[Found]:
        out: list[Found] = []
        for group in batches(sorted(customers), self._batch):
            self.requests += 1
            first = await _get(self._client, readback_page(group, 1))
            out.extend(found_in_list(first))
            for number in range(2, min(page_count(first), MAX_PAGES) + 1):
                self.requests += 1
                out.extend(found_in_list(await _get(self._client, readback_page(group, number))))
        return out


def parse_attachment(raw: bytes) -> Any:
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    return json.loads(raw)


Download = Callable[[str], Awaitable[tuple[int, bytes]]]


class ExportReader:
    def __init__(
        self,
        client: ApiClient,
        download: Download,
        fallback: Reader,
        *,
        max_records: int,
        poll_interval_s: float,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._download = download
        self._fallback = fallback
        self._max_records = max_records
        # Entries a customer held before the run (the pre-check's snapshot), None if unknown.
        self.existing: Callable[[str], int | None] = lambda _customer: None
        self._poll_s = poll_interval_s
        self._sleep = sleep
        self.exports_created = 0
        self.requests_by: Counter[str] = Counter()  # by EXPORT_PURPOSE
        self.pace = PaceMeter()  # records a second of an export, from the finished ones
        self.links_expired = 0
        self.requests = 0  # API requests of exports (create + polls); downloads are not API calls

    def _groups(self, customers: dict[str, int]) -> list[list[str]]:
        """Customers cut into groups whose records fit one export. With the snapshot's count of
        each customer's earlier entries, a group is filled to 95 % of the cap (what others add
        meanwhile); without it, a fifth of the cap is kept for entries the customers had."""
        known = {c: self.existing(c) for c in customers}
        exact = all(n is not None for n in known.values())
        limit = max(1, self._max_records * 19 // 20 if exact else self._max_records * 4 // 5)
        groups: list[list[str]] = [[]]
        records = 0
        for customer in sorted(customers):
            weight = customers[customer] + (known[customer] or 0)
            if groups[-1] and records + weight > limit:
                groups.append([])
                records = 0
            groups[-1].append(customer)
            records += weight
        return [g for g in groups if g]

    async def read(self, customers: dict[str, int]) -> list[Found]:
        # The groups' exports run side by side: each one's wait is mostly the server's.
        parts = await asyncio.gather(*(self._group(g, customers) for g in self._groups(customers)))
        return [found for part in parts for found in part]

    async def _group(self, group: list[str], customers: dict[str, int]) -> list[Found]:
        try:
            return await self._export(group)
        except _TooBig:
            if len(group) == 1:
                return await self._fallback.read({group[0]: customers[group[0]]})
            middle = len(group) // 2
            return [
                *await self._group(group[:middle], customers),
                *await self._group(group[middle:], customers),
            ]
        except ExportFailed as exc:
            log.warning("imports.export_fallback", reason=str(exc), customers=len(group))
            return await self._fallback.read({c: customers[c] for c in group})

    async def everything(self) -> list[Found]:
        """Every customer_payment_source of the organization, in one export (the caller checked
        the count fits). Raises ExportFailed."""
        try:
            return await self._export(None)
        except _TooBig:
            raise ExportFailed("the organization holds more records than one export may") from None

    async def customers_by_email(self, forms: Sequence[str]) -> list[tuple[str, str]]:
        """(id, stored e-mail) of the customers whose e-mail is one of `forms` (the server's
        `email_in`, so its case rules), through exports of up to 95 % of the cap of addresses
        each. An address matches one customer, or several whose e-mails differ only in case: a
        group the server finds too big is halved. Raises ExportFailed."""
        out: list[tuple[str, str]] = []
        for group in batches(list(forms), max(1, self._max_records * 19 // 20)):
            out.extend(await self._customers_group(group))
        return out

    async def _customers_group(self, forms: list[str]) -> list[tuple[str, str]]:
        try:
            records = await self._records(CUSTOMERS_TYPE, {"email_in": forms})
        except _TooBig:
            if len(forms) == 1:
                raise ExportFailed("one e-mail matches more customers than one export may") from None
            middle = len(forms) // 2
            return [
                *await self._customers_group(forms[:middle]),
                *await self._customers_group(forms[middle:]),
            ]
        return [
            (str(r["id"]), str(r["email"]))
            for r in (records if isinstance(records, list) else [])
            if isinstance(r, dict) and r.get("id") is not None and isinstance(r.get("email"), str)
        ]

    async def _export(self, group: Sequence[str] | None) -> list[Found]:
        filters = None if group is None else {"customer_id_in": list(group)}
        return found_in_export(await self._records(CPS_TYPE, filters))

    async def _records(self, resource_type: str, filters: dict[str, Any] | None) -> Any:
        """The records of one export, parsed; a new export when the link expired."""
        for _ in range(EXPORT_LINK_RETRIES):
            url = await self._run_export(resource_type, filters)
            status, raw = await self._download(url)
            if status == 200:
                try:
                    return parse_attachment(raw)
                except (ValueError, OSError) as exc:
                    raise ExportFailed(f"the export file could not be read ({exc})") from None
            self.links_expired += 1
            log.info("imports.export_link_expired", http_status=status, action="creating a new export")
        raise ExportFailed(f"the export's link expired {EXPORT_LINK_RETRIES} times in a row")

    async def _run_export(self, resource_type: str, filters: dict[str, Any] | None) -> str:
        attributes: dict[str, Any] = {"resource_type": resource_type, "format": "json"}
        if filters is not None:
            attributes["filters"] = filters
        body = {"data": {"type": "exports", "attributes": attributes}}
        self._count()
        answer = await self._client.request(
            ApiRequest("POST", EXPORTS_PATH, body=body), self._client.attempts(), retry_ambiguous=True
        )
        verdict = answer.verdict
        if isinstance(verdict, RowRejected):
            text = f"{verdict.code} {verdict.detail}".lower()
            if verdict.http_status in (413, 422) and ("too many" in text or "too long" in text):
                raise _TooBig
            raise ExportFailed(f"{verdict.http_status} {verdict.code}: {verdict.detail}")
        if not isinstance(verdict, Ok) or answer.response is None:
            raise ExportFailed("creating the export got no usable answer")
        self.exports_created += 1
        export_id = answer.response.body["data"]["id"]
        records = answer.response.body["data"]["attributes"].get("records_count")
        for poll in range(EXPORT_POLLS_MAX):
            # Never at once (an export is never done the moment it is made, and every export's
            # polls share one burst window, /api/exports/{id}): first when the exports so far
            # say it should be done, then soon, then every poll interval.
            await self._sleep(self._wait_s(poll, records))
            self._count()
            body_ = await _get(
                self._client, ApiRequest("GET", f"{EXPORTS_PATH}/{export_id}", template=EXPORT_ITEM)
            )
            attributes = body_["data"]["attributes"]
            status = attributes.get("status")
            if status == "completed" and attributes.get("attachment_url"):
                if isinstance(records, int):
                    self.pace.ended(export_id, records, server_span_s(attributes))
                return str(attributes["attachment_url"])
            if status in ("failed", "interrupted"):
                raise ExportFailed(f"export {export_id} ended {status}")
        raise ExportFailed(f"export {export_id} did not complete")

    def _count(self) -> None:
        self.requests += 1
        self.requests_by[EXPORT_PURPOSE.get()] += 1

    def _wait_s(self, poll: int, records: object) -> float:
        if poll == 0 and isinstance(records, int) and self.pace.pace:
            expected = records / self.pace.pace + EXPORT_FIRST_POLL_S / 5
            return min(max(expected, EXPORT_FIRST_POLL_S), EXPORT_EXPECTED_WAIT_MAX_S)
        return float(min(self._poll_s, EXPORT_FIRST_POLL_S * 2**poll))


class _TooBig(Exception):
    pass


class ExportFailed(Exception):
    pass


class AttachmentFetcher:
    """Downloads export files with a session of its own: the API's access token never goes there."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __call__(self, url: str) -> tuple[int, bytes]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.get(url, allow_redirects=True) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ExportFailed(f"downloading the export failed ({type(exc).__name__})") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
