"""Pure: the batched look-up requests and the matching of their answers to pairings.

Two look-ups keep the importer from creating what exists and cost little of the rate budget:

- e-mail → customer id, up to 25 e-mails per request (`filter[q][email_in]`). Nothing says
  whether Commerce Layer matches e-mails case-sensitively (ransack's `_in` is a plain SQL `IN`),
  so each address is asked for as written and in lower case, and the answers are matched to the
  row ignoring case. Two customers whose e-mails differ only in case both match: the row is
  ambiguous, and fails (prepare.py);
- a customer's wallet (existing customer_payment_sources), for up to `lookups.wallet_batch`
  customers per request (`filter[q][customer_id_in]`), with the customer and payment-source
  linkage included so each entry can be turned into the same pairing key the input rows have.
  It sends an explicit `sort` (the oldest entry wins, and the default order is undocumented), a
  sparse fieldset (only what the key needs), and, when every row asked about has the token
  shape, `payment_source_token_in`, so big wallets are not paged through for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from importer.planner import CPS_ITEM, CPS_PATH
from importer.wire import ApiRequest

CUSTOMERS_PATH = "/api/customers"
PAGE_SIZE = 25  # the API's maximum


def _query(params: Iterable[tuple[str, str]]) -> str:
    # Brackets, '@' and '+' are percent-encoded (a raw '+' would be read as a space); the comma
    # between values of an `_in` filter stays literal, it is the separator.
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=',')}" for k, v in params)


def email_forms(emails: Iterable[str]) -> list[str]:
    """Each address as written and in lower case, de-duplicated, in order."""
    return list(dict.fromkeys(form for email in emails for form in (email, email.lower())))


def customers_by_email(emails: Sequence[str], page: int = 1) -> ApiRequest:
    params = [
        ("filter[q][email_in]", ",".join(emails)),
        ("fields[customers]", "email"),
        ("page[size]", str(PAGE_SIZE)),
    ]
    if page > 1:
        params.append(("page[number]", str(page)))
    return ApiRequest("GET", CUSTOMERS_PATH, _query(params))


# Oldest first, ties broken by id: `wallet_index` keeps the first entry of a key, and a list's
# default order is undocumented.
WALLET_SORT = "created_at,id"
# Only what a pairing key needs: the token, and the customer and payment-source linkage.
WALLET_FIELDS = "payment_source_token,customer,payment_source"
# `on_existing: update` compares these with the row's, so its look-ups ask for them too.
WALLET_VALUE_FIELDS = "reference,reference_origin,metadata"
# A token filter longer than this is left out (it only saves pages). 4,000 characters hold a
# chunk of 100 Stripe-sized tokens (`pm_` + 24), and keep the whole URL (100 customer ids too)
# near 5,500 characters, under the 8 KiB request line many servers and proxies accept.
MAX_TOKEN_FILTER_CHARS = 4000


def wallet_by_customers(
    customer_ids: Sequence[str], page: int = 1, tokens: Sequence[str] = (), *, values: bool = False
) -> ApiRequest:
    """`values`: also the attributes `on_existing: update` compares (WALLET_VALUE_FIELDS)."""
    params = [("filter[q][customer_id_in]", ",".join(customer_ids))]
    if tokens:
        params.append(("filter[q][payment_source_token_in]", ",".join(tokens)))
    params += [
        ("include", "customer,payment_source"),
        (
            "fields[customer_payment_sources]",
            f"{WALLET_FIELDS},{WALLET_VALUE_FIELDS}" if values else WALLET_FIELDS,
        ),
        ("sort", WALLET_SORT),
        ("page[size]", str(PAGE_SIZE)),
    ]
    if page > 1:
        params.append(("page[number]", str(page)))
    return ApiRequest("GET", CPS_PATH, _query(params))


def token_filter(tokens: Iterable[str | None]) -> tuple[str, ...]:
    """The tokens to filter a wallet look-up by, or () when the filter cannot be used.

    Only when every row asked about has the token shape (an id-shape row's entry has no token to
    filter by), no token holds a comma (the `_in` separator), and the list is not too long."""
    out: list[str] = []
    for token in tokens:
        if not token or "," in token:
            return ()
        out.append(token)
    unique = sorted(set(out))
    return tuple(unique) if sum(len(t) + 1 for t in unique) <= MAX_TOKEN_FILTER_CHARS else ()


def records_by_ids(ids: Sequence[str]) -> ApiRequest:
    """Up to PAGE_SIZE wallet entries by id, only their metadata: `undo`'s ownership check."""
    params = [
        ("filter[q][id_in]", ",".join(ids)),
        ("fields[customer_payment_sources]", "metadata"),
        ("page[size]", str(PAGE_SIZE)),
    ]
    return ApiRequest("GET", CPS_PATH, _query(params))


def record_by_id(record_id: str) -> ApiRequest:
    """One wallet entry, only its metadata: does it still exist after a DELETE with no answer?"""
    query = _query([("fields[customer_payment_sources]", "metadata")])
    return ApiRequest("GET", f"{CPS_PATH}/{quote(record_id, safe='')}", query, template=CPS_ITEM)


def metadata_by_id(body: Any) -> dict[str, dict[str, Any]]:
    """Record id → its metadata (empty when it has none), from a list or a single-record answer."""
    data = body.get("data") if isinstance(body, dict) else None
    records = [data] if isinstance(data, dict) else _records(body)
    out: dict[str, dict[str, Any]] = {}
    for record in records:
        if not isinstance(record.get("id"), str):
            continue
        attributes = record.get("attributes")
        metadata = attributes.get("metadata") if isinstance(attributes, dict) else None
        out[record["id"]] = dict(metadata) if isinstance(metadata, dict) else {}
    return out


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


def emails_found(body: Any) -> list[tuple[str, str]]:
    """(customer id, e-mail as stored) for each customer on one page of `GET /api/customers`."""
    out: list[tuple[str, str]] = []
    for record in _records(body):
        attributes = record.get("attributes")
        email = attributes.get("email") if isinstance(attributes, dict) else None
        if isinstance(email, str) and isinstance(record.get("id"), str):
            out.append((record["id"], email))
    return out


def match_emails(
    emails: Iterable[str], found: Iterable[tuple[str, str]]
) -> dict[str, tuple[tuple[str, str], ...]]:
    """Each address → the customers (id, stored e-mail) whose e-mail equals it ignoring case.

    More than one means customers whose e-mails differ only in case: the caller must not pick."""
    by_lower: dict[str, dict[str, str]] = {}
    for customer_id, email in found:
        by_lower.setdefault(email.lower(), {}).setdefault(customer_id, email)
    return {email: tuple(sorted(by_lower.get(email.lower(), {}).items())) for email in dict.fromkeys(emails)}


@dataclass(frozen=True, slots=True)
class WalletEntry:
    id: str
    customer_id: str | None
    source_refs: tuple[str, ...]  # `<type>:<id>` and/or `token:<token>`, as Pairing.source_ref
    # What `on_existing: update` compares with the row (None/{} when the answer leaves them out).
    reference: str | None = None
    reference_origin: str | None = None
    metadata: dict[str, Any] | None = None
    # The attributes the answer carried: one a sparse fieldset left out cannot be compared.
    seen: frozenset[str] = frozenset()


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
        metadata = attributes.get("metadata") if isinstance(attributes, dict) else None
        entries.append(
            WalletEntry(
                record["id"],
                customer.get("id") if customer else None,
                tuple(refs),
                reference=_text(attributes, "reference"),
                reference_origin=_text(attributes, "reference_origin"),
                metadata=dict(metadata) if isinstance(metadata, dict) else None,
                seen=frozenset(attributes) if isinstance(attributes, dict) else frozenset(),
            )
        )
    return entries


def _text(attributes: Any, name: str) -> str | None:
    value = attributes.get(name) if isinstance(attributes, dict) else None
    return value if isinstance(value, str) else None


def wallet_records(
    entries: Iterable[WalletEntry], only_customer: str | None = None
) -> dict[str, WalletEntry]:
    """Pairing key (`id:<customer>|<source>`) → the first (oldest) entry with that key.

    `only_customer`: the one customer asked about, used when an answer carries no customer
    linkage (then the entry can only be that customer's)."""
    index: dict[str, WalletEntry] = {}
    for entry in entries:
        customer = entry.customer_id or only_customer
        if customer is None:
            continue
        for ref in entry.source_refs:
            index.setdefault(f"id:{customer}|{ref}", entry)
    return index


def wallet_index(entries: Iterable[WalletEntry], only_customer: str | None = None) -> dict[str, str]:
    """Pairing key → id of the first (oldest) entry with that key (see `wallet_records`)."""
    return {key: entry.id for key, entry in wallet_records(entries, only_customer).items()}


def batches(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]
