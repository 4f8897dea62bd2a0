"""`--dry-run`: do the payment sources and payment methods the rows name exist?

A real run learns that a payment source does not exist from the POST's 422; a dry run sends no
POST, so without this check it would say `would_create` for a row the real run then fails.
Here the ids are looked up in batches, one request per type per `BATCH` ids:

    GET /api/stripe_payments?filter[q][id_in]=a,b,…&fields[stripe_payments]=id&page[size]=25
    GET /api/payment_methods?filter[q][id_in]=…&fields[payment_methods]=id&page[size]=25

An id not in the answer does not exist (or this API key may not see it: the real run's POST
would fail the same way). A token-shaped row's gateway token cannot be checked over the API;
its `payment_method_id`, if given, is. Answers are remembered for the run (a bounded cache), so
an id repeated across chunks is asked once.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

from importer.client import ApiClient
from importer.models import Outcome, Pairing, RowStatus
from importer.stats import DispatchStats
from importer.wire import ApiRequest, Ok, Retriable, RowRejected

BATCH = 25  # ids per request: the API's largest page, so one page answers one request
CACHE_MAX = 50_000
PAYMENT_METHODS = "payment_methods"


# -- pure -----------------------------------------------------------------------------------------
def ids_request(resource: str, ids: Sequence[str]) -> ApiRequest:
    """One look-up of up to BATCH ids of `resource` (a payment source type or payment_methods)."""
    params = [
        ("filter[q][id_in]", ",".join(ids)),
        (f"fields[{resource}]", "id"),
        ("page[size]", str(BATCH)),
    ]
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe=',')}" for k, v in params)
    return ApiRequest("GET", f"/api/{resource}", query)


def ids_found(body: Any) -> set[str]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return set()
    return {r["id"] for r in data if isinstance(r, dict) and isinstance(r.get("id"), str)}


def wanted(pairing: Pairing) -> list[tuple[str, str]]:
    """(resource, id) pairs a row needs to exist."""
    if pairing.payment_source_id and pairing.payment_source_type:
        return [(pairing.payment_source_type, pairing.payment_source_id)]
    if pairing.payment_method_id:
        return [(PAYMENT_METHODS, pairing.payment_method_id)]
    return []


def missing_outcome(resource: str, id_: str, customer_id: str | None) -> Outcome:
    if resource == PAYMENT_METHODS:
        code, field = "PAYMENT_METHOD_NOT_FOUND", "payment_method_id"
        what = f"no payment method with id {id_}"
    else:
        code, field = "PAYMENT_SOURCE_NOT_FOUND", "payment_source_id"
        what = f"no {resource} with id {id_}"
    return Outcome(
        RowStatus.FAILED,
        customer_id=customer_id,
        error_code=code,
        error_detail=f"{field} not found: {what} in this organization, so the real run would fail "
        "this row; correct the id (or the type)",
    )


def lookup_failed_outcome(customer_id: str | None, status: int | None, code: str, detail: str) -> Outcome:
    return Outcome(
        RowStatus.FAILED,
        customer_id=customer_id,
        http_status=status,
        error_code=code,
        error_detail=f"checking that the payment source exists failed: {detail}",
    )


# -- I/O ------------------------------------------------------------------------------------------
class ExistenceChecker:
    def __init__(self, client: ApiClient, stats: DispatchStats) -> None:
        self._client = client
        self._stats = stats
        self._known: OrderedDict[tuple[str, str], bool] = OrderedDict()

    async def check(self, rows: Iterable[tuple[int, Pairing, str | None]]) -> dict[int, Outcome]:
        """`rows`: (seq, pairing, customer id). Returns a failed outcome for each row whose
        payment source or payment method does not exist; the other rows are fine."""
        rows = list(rows)
        asked: dict[str, set[str]] = defaultdict(set)
        for _, pairing, _ in rows:
            for resource, id_ in wanted(pairing):
                if (resource, id_) not in self._known:
                    asked[resource].add(id_)
        errors: dict[tuple[str, str], tuple[int | None, str, str]] = {}
        for resource, ids in sorted(asked.items()):
            ordered = sorted(ids)
            for start in range(0, len(ordered), BATCH):
                batch = ordered[start : start + BATCH]
                failure = await self._ask(resource, batch)
                if failure is not None:
                    errors.update(dict.fromkeys(((resource, i) for i in batch), failure))
        out: dict[int, Outcome] = {}
        for seq, pairing, customer_id in rows:
            for resource, id_ in wanted(pairing):
                if (resource, id_) in errors:
                    out[seq] = lookup_failed_outcome(customer_id, *errors[resource, id_])
                elif not self._known.get((resource, id_), True):
                    out[seq] = missing_outcome(resource, id_, customer_id)
        return out

    async def _ask(self, resource: str, ids: list[str]) -> tuple[int | None, str, str] | None:
        self._stats.existence_lookups += 1
        answer = await self._client.request(
            ids_request(resource, ids), self._client.attempts(), retry_ambiguous=True
        )
        verdict = answer.verdict
        if not isinstance(verdict, Ok) or answer.response is None:
            if isinstance(verdict, RowRejected | Retriable):
                return verdict.http_status, verdict.code, verdict.detail
            return None, "LOOKUP_FAILED", "the look-up got no usable answer"
        found = ids_found(answer.response.body)
        for id_ in ids:
            self._known[(resource, id_)] = id_ in found
        while len(self._known) > CACHE_MAX:
            self._known.popitem(last=False)
        return None
