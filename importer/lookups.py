"""Pure: the batched look-up requests and the matching of their answers to pairings.

Two look-ups keep the importer from creating what exists and cost little of the rate budget:

- e-mail → customer id, up to 25 e-mails per request (`filter[q][email_in]`), compared in lower
  case on both sides because the API's match may be case-sensitive;
- a customer's wallet (existing customer_payment_sources), for up to `lookups.wallet_batch`
  customers per request (`filter[q][customer_id_in]`), with the customer and payment-source
  linkage included so each entry can be turned into the same pairing key the input rows have.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from importer.planner import CPS_PATH
from importer.transport import ApiRequest

CUSTOMERS_PATH = "/api/customers"
PAGE_SIZE = 25  # the API's maximum


def _query(params: Iterable[tuple[str, str]]) -> str:
    # Brackets, '@' and '+' are percent-encoded (a raw '+' would be read as a space); the comma
    # between values of an `_in` filter stays literal, it is the separator.
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=',')}" for k, v in params)


def customers_by_email(emails: Sequence[str], page: int = 1) -> ApiRequest:
    params = [
        ("filter[q][email_in]", ",".join(emails)),
        ("fields[customers]", "email"),
        ("page[size]", str(PAGE_SIZE)),
    ]
    if page > 1:
        params.append(("page[number]", str(page)))
    return ApiRequest("GET", CUSTOMERS_PATH, _query(params))


def wallet_by_customers(customer_ids: Sequence[str], page: int = 1) -> ApiRequest:
    params = [
        ("filter[q][customer_id_in]", ",".join(customer_ids)),
        ("include", "customer,payment_source"),
        ("page[size]", str(PAGE_SIZE)),
    ]
    if page > 1:
        params.append(("page[number]", str(page)))
    return ApiRequest("GET", CPS_PATH, _query(params))


def page_count(body: Any) -> int:
    """How many pages the list has (1 when the answer does not say)."""
    meta = body.get("meta") if isinstance(body, dict) else None
    count = meta.get("page_count") if isinstance(meta, dict) else None
    if isinstance(count, int) and count >= 1:
        return count
    links = body.get("links") if isinstance(body, dict) else None
    return 2 if isinstance(links, dict) and links.get("next") else 1


def _records(body: Any) -> list[dict[str, Any]]:
    data = body.get("data") if isinstance(body, dict) else None
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


def emails_found(body: Any) -> dict[str, str]:
    """Lower-cased e-mail → customer id, from one page of `GET /api/customers`."""
    out: dict[str, str] = {}
    for record in _records(body):
        attributes = record.get("attributes")
        email = attributes.get("email") if isinstance(attributes, dict) else None
        if isinstance(email, str) and isinstance(record.get("id"), str):
            out.setdefault(email.lower(), record["id"])
    return out


@dataclass(frozen=True, slots=True)
class WalletEntry:
    id: str
    customer_id: str | None
    source_refs: tuple[str, ...]  # `<type>:<id>` and/or `token:<token>`, as Pairing.source_ref


def _linkage(relationships: Any, name: str) -> dict[str, Any] | None:
    rel = relationships.get(name) if isinstance(relationships, dict) else None
    data = rel.get("data") if isinstance(rel, dict) else None
    return data if isinstance(data, dict) else None


def wallet_entries(body: Any) -> list[WalletEntry]:
    entries = []
    for record in _records(body):
        if not isinstance(record.get("id"), str):
            continue
        relationships = record.get("relationships")
        customer = _linkage(relationships, "customer")
        source = _linkage(relationships, "payment_source")
        attributes = record.get("attributes") if isinstance(record.get("attributes"), dict) else {}
        refs = []
        if source and source.get("type") and source.get("id"):
            refs.append(f"{source['type']}:{source['id']}")
        token = attributes.get("payment_source_token") if isinstance(attributes, dict) else None
        if isinstance(token, str) and token:
            refs.append(f"token:{token}")
        entries.append(WalletEntry(record["id"], customer.get("id") if customer else None, tuple(refs)))
    return entries


def wallet_index(entries: Iterable[WalletEntry], only_customer: str | None = None) -> dict[str, str]:
    """Pairing key (`id:<customer>|<source>`) → id of the first (oldest) entry with that key.

    `only_customer`: the one customer asked about, used when an answer carries no customer
    linkage (then the entry can only be that customer's)."""
    index: dict[str, str] = {}
    for entry in entries:
        customer = entry.customer_id or only_customer
        if customer is None:
            continue
        for ref in entry.source_refs:
            index.setdefault(f"id:{customer}|{ref}", entry.id)
    return index


def batches(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
