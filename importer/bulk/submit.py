"""POST /api/imports with the exactly-once rule, and polling an import until it ends.

`Submitter.post` sends one import. An answer that leaves the outcome unknown (a 5xx, a timeout,
a dropped connection) is followed by a look-up of the import by its `reference`; only a look-up
that finds nothing allows the POST to be sent again. A 422 "too many imports" (the server's own
queue is full) is flow control: wait one poll interval, then send again.

`Poller.wait` reads `GET /api/imports/{id}` every `poll_interval_s` through its own client, whose
rate windows are the cacheable-read budget and whose 429 gate pauses polling only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import structlog

from importer.bulk.chunking import is_queue_full, is_too_large
from importer.client import ApiClient
from importer.clock import Sleep
from importer.retry import Backoff, Retrier
from importer.wallets import LookupFailed
from importer.wire import ApiRequest, Ok, Retriable, RowRejected

IMPORTS_PATH = "/api/imports"
# One burst window for every import's polls: the server counts them per endpoint, not per record.
IMPORT_ITEM = f"{IMPORTS_PATH}/{{id}}"
QUEUE_FULL_WAITS = 600  # polls' worth of waiting for the server's import queue, then give up
FINAL = ("completed", "interrupted")
log = structlog.get_logger("importer")


@dataclass(frozen=True, slots=True)
class Posted:
    import_id: str


@dataclass(frozen=True, slots=True)
class TooLarge:
    detail: str


@dataclass(frozen=True, slots=True)
class Refused:
    http_status: int | None
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Unknown:
    """The POST may have landed and the look-up could not tell: the import stays `posting`."""

    detail: str


PostResult = Posted | TooLarge | Refused | Unknown


def import_body(
    reference: str, inputs: list[dict[str, Any]], *, skip_errors: bool, origin: str
) -> dict[str, Any]:
    return {
        "data": {
            "type": "imports",
            "attributes": {
                "resource_type": "customer_payment_sources",
                "format": "json",
                "inputs": inputs,
                "skip_errors": skip_errors,
                "reference": reference,
                "reference_origin": origin,
            },
        }
    }


def by_reference(reference: str) -> ApiRequest:
    query = f"{quote('filter[q][reference_eq]', safe='')}={quote(reference, safe='')}"
    return ApiRequest("GET", IMPORTS_PATH, query)


class Submitter:
    def __init__(
        self,
        client: ApiClient,
        poll_client: ApiClient,
        backoff: Backoff,
        sleep: Sleep,
        poll_interval_s: float,
    ) -> None:
        self._client = client
        self._retrier = Retrier(backoff, sleep)  # not counted: `lost_answers` reports these
        self._poll_client = poll_client
        self._sleep = sleep
        self._poll_s = poll_interval_s
        self.lost_answers = 0

    async def find(self, reference: str) -> str | None:
        """The id of the import with this reference, or None. Raises LookupFailed."""
        answer = await self._poll_client.request(
            by_reference(reference), self._poll_client.attempts(), retry_ambiguous=True
        )
        verdict = answer.verdict
        if not isinstance(verdict, Ok) or answer.response is None:
            code = getattr(verdict, "code", "LOOKUP_FAILED")
            detail = getattr(verdict, "detail", "no usable answer")
            raise LookupFailed(getattr(verdict, "http_status", None), code, detail)
        data = answer.response.body.get("data") if isinstance(answer.response.body, dict) else None
        if isinstance(data, list) and data and isinstance(data[0], dict):
            return str(data[0]["id"])
        return None

    async def post(self, reference: str, body: dict[str, Any]) -> PostResult:
        request = ApiRequest("POST", IMPORTS_PATH, body=body)
        attempts = self._client.attempts()
        waits = 0
        while True:
            answer = await self._client.request(request, attempts, retry_ambiguous=False)
            verdict = answer.verdict
            if isinstance(verdict, Ok) and answer.response is not None:
                return Posted(str(answer.response.body["data"]["id"]))
            if isinstance(verdict, RowRejected):
                if is_too_large(verdict.http_status, verdict.code, verdict.detail):
                    return TooLarge(verdict.detail)
                if (
                    is_queue_full(verdict.http_status, verdict.code, verdict.detail)
                    and waits < QUEUE_FULL_WAITS
                ):
                    waits += 1
                    await self._sleep(self._poll_s)
                    continue
                return Refused(verdict.http_status, verdict.code, verdict.detail)
            assert isinstance(verdict, Retriable)
            if verdict.ambiguous:
                self.lost_answers += 1
                try:
                    found = await self.find(reference)
                except LookupFailed as exc:
                    return Unknown(
                        f"{verdict.detail}; the import may exist and looking it up by reference {reference} "
                        f"failed ({exc.code}: {exc.detail}); the next run looks it up before sending"
                    )
                if found is not None:
                    log.info("imports.lost_answer_found", reference=reference, import_id=found)
                    return Posted(found)
                log.info("imports.lost_answer_not_found", reference=reference, action="sending again")
            if not attempts.may_retry():
                return Refused(
                    verdict.http_status,
                    verdict.code,
                    f"{verdict.detail} (gave up after {attempts.sent} attempts)",
                )
            await self._retrier.pause(attempts.counted)


class Poller:
    def __init__(self, client: ApiClient, sleep: Sleep, poll_interval_s: float) -> None:
        self._client = client
        self._sleep = sleep
        self._poll_s = poll_interval_s
        self.polls = 0

    async def wait(
        self, import_id: str, on_progress: Callable[[dict[str, Any]], float | None]
    ) -> dict[str, Any] | None:
        """The import's final attributes, or None when the server no longer knows it (404).

        `on_progress` sees every answer and may ask for the next poll sooner than the interval
        (seconds; an import expected to end soon), though never sooner than a tenth of it."""
        request = ApiRequest("GET", f"{IMPORTS_PATH}/{import_id}", template=IMPORT_ITEM)
        while True:
            self.polls += 1
            answer = await self._client.request(request, self._client.attempts(), retry_ambiguous=True)
            verdict = answer.verdict
            delay = self._poll_s
            if isinstance(verdict, Ok) and answer.response is not None:
                attributes = dict(answer.response.body["data"]["attributes"])
                sooner = on_progress(attributes)
                if attributes.get("status") in FINAL:
                    return attributes
                if sooner is not None:
                    delay = min(delay, max(sooner, delay / 10))
            elif isinstance(verdict, RowRejected) and verdict.http_status == 404:
                return None
            else:
                log.warning(
                    "imports.poll_failed", import_id=import_id, reason=getattr(verdict, "detail", None)
                )
            await self._sleep(delay)
