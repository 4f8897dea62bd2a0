"""Turn one `SourceRow` into a `Pairing`, or into every problem with it in plain words.

Pure: no I/O, no logging, no clock. Each message names the column as the file calls it and
says how to fix the cell, because the person reading failures.csv fixes the file, not the code.

Rules (see `validate_row`):

* Customer: `customer_id` or `customer_email`. With both, the email must be well-formed, and at
  run time it must name the same customer as the id (prepare.py: else CUSTOMER_MISMATCH).
* Payment source, exactly one shape:
  - id shape: `payment_source_type` + `payment_source_id`;
  - token shape: `payment_source_token`, optionally with `customer_token` and
    `payment_method_id` (a valid `payment_source_type` may accompany it and is kept).
  A row that fills in both `payment_source_id` and `payment_source_token` is an error: they
  would create different wallet entries and only the person can say which one is meant.
  `customer_token` / `payment_method_id` next to a `payment_source_id` are an error for the
  same reason (they only mean something with a token).
* Invisible characters (zero-width space and friends) are removed from ids, types, tokens and
  e-mails before any check, so `validate` and `run` see the same key; `Name <address>` is
  the address.
* Ids are exactly 10 ASCII letters/digits; emails are checked with a pragmatic pattern and
  kept as written (the API may match them case-sensitively; keys fold case, models.Pairing);
  tokens are non-empty, without whitespace, at most 255 characters; `metadata` is a JSON object.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from importer.headers import match_headers
from importer.models import KEY_FIELDS, METADATA_PREFIX, PAYMENT_SOURCE_TYPES, Pairing, SourceRow

_ID = re.compile(r"[A-Za-z0-9]{10}")
# Pragmatic, not RFC 5322: one @, no spaces or list/quote punctuation, dotted domain whose
# last label is letters (or an IDN "xn--" label). Catches the typos people make, nothing more.
_EMAIL_LOCAL = r"[^\s@<>()\[\],;:\"]+"
_EMAIL_LABEL = r"[^\s@<>()\[\],;:\"._]+"
_EMAIL = re.compile(rf"{_EMAIL_LOCAL}@(?:{_EMAIL_LABEL}\.)+(?:[^\W\d_]{{2,}}|xn--[A-Za-z0-9-]+)")
_SQUASH = re.compile(r"[\s_.\-]+")
# Characters nobody sees, which copy-paste from web pages and mail clients brings along: zero-width
# space, non-joiner, joiner, word joiner, BOM, soft hyphen. Removed from ids, types, tokens and
# e-mails (a look-up with them finds nothing); references and metadata keep them as given.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
# "Ada Lovelace <ada@example.com>", as mail clients copy an address.
_NAMED_ADDRESS = re.compile(r"[^<>]*<\s*([^<>\s]+@[^<>\s]+)\s*>")
MAX_TOKEN_LENGTH = 255
# A value this long in a field that is sent is a paste gone wrong, not data; sending it would
# cost a rate-limited request only to be refused (the API's own size limits are unpublished).
MAX_TEXT_LENGTH = 10_000


def _source_type_spellings() -> dict[str, str]:
    """Squashed spelling → API type: plural, singular and the bare provider name."""
    spellings: dict[str, str] = {}
    for api_type in PAYMENT_SOURCE_TYPES:
        provider = api_type.removesuffix("_payments").removesuffix("_transfers")
        squashed = provider.replace("_", "")
        noun = "transfer" if api_type.endswith("_transfers") else "payment"
        for spelling in (squashed, f"{squashed}{noun}", f"{squashed}{noun}s"):
            spellings[spelling] = api_type
    # "checkout.com" squashes to "checkoutcom"; people also just write "checkout".
    for spelling in ("checkout", "checkoutpayment", "checkoutpayments"):
        spellings[spelling] = "checkout_com_payments"
    return spellings


_SOURCE_TYPES = MappingProxyType(_source_type_spellings())


@lru_cache(maxsize=1024)  # a file spells its types a handful of ways, on every row
def normalize_source_type(text: str) -> str | None:
    """The API type for how a person wrote it ("Stripe payment", "wire-transfers"); None if unknown."""
    return _SOURCE_TYPES.get(_SQUASH.sub("", text.casefold()))


def strip_invisible(value: str) -> str:
    """`value` without the invisible characters above (and the spaces they hid at its ends)."""
    if value.isascii():
        return value
    return value.translate(_INVISIBLE).strip()


@dataclass(frozen=True)
class Defaults:
    """Values merged into every row; a value in the row wins over the default."""

    reference_origin: str | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)


@lru_cache(maxsize=256)
def _builtin_headers(headers: tuple[str, ...]) -> Mapping[str, str]:
    """Field → header, from the built-in aliases only (cached: every row of a sheet has the same headers)."""
    columns = match_headers(headers).columns
    return MappingProxyType({target: header for header, target in columns.items()})


def _column_names(row: SourceRow) -> Mapping[str, str]:
    """Field → the header the file uses for it, so messages speak the file's language.

    The loader gives the map (`SourceRow.columns`). A row built without it (tests, other
    callers) has it recovered: a filled field is found by its value among the raw cells; an
    empty one by the built-in aliases. A field with no column at all keeps its canonical name.
    """
    if row.columns:
        return row.columns
    builtin = _builtin_headers(tuple(row.raw))
    names: dict[str, str] = {}
    for target, value in row.fields.items():
        header = builtin.get(target)
        if header is None or row.raw.get(header) != value:
            header = next((h for h, v in row.raw.items() if v == value), None)
        names[target] = header or target
    for target, header in builtin.items():
        names.setdefault(target, header)
    return names


class _Check:
    """Collects problems for one row; `name(field)` is the column as the file calls it."""

    def __init__(self, row: SourceRow) -> None:
        self.row = row
        self.fields = {
            target: strip_invisible(value) if target in KEY_FIELDS else value
            for target, value in row.fields.items()
        }
        self._names: Mapping[str, str] | None = None  # found only when a message needs it
        self.problems: list[str] = list(row.cell_errors)
        self.type_given: str | None = None

    @property
    def names(self) -> Mapping[str, str]:
        if self._names is None:
            self._names = _column_names(self.row)
        return self._names

    def name(self, target: str) -> str:
        return repr(self.names.get(target, target))

    def get(self, target: str) -> str | None:
        return self.fields.get(target) or None

    def add(self, message: str) -> None:
        self.problems.append(message)

    def id_value(self, target: str) -> str | None:
        value = self.get(target)
        if value is None or _ID.fullmatch(value):
            return value
        hint = "ids are exactly 10 letters and digits (A–Z, a–z, 0–9)"
        if value.isdigit() and len(value) < 10:
            hint += (
                "; an all-digit value this short often lost its leading zeros because the "
                "spreadsheet stored it as a number: format the column as Text and re-enter the id"
            )
        elif value.isascii() and value.isalnum():
            hint += f", this one has {len(value)}"
        else:
            hint += "; remove spaces and other characters"
        self.add(f"column {self.name(target)}: {value!r} is not a valid id: {hint}")
        return None

    def token_value(self, target: str) -> str | None:
        value = self.get(target)
        if value is None:
            return None
        if any(ch.isspace() for ch in value):
            self.add(f"column {self.name(target)}: the token contains spaces or line breaks; remove them")
            return None
        if len(value) > MAX_TOKEN_LENGTH:
            self.add(
                f"column {self.name(target)}: the token is {len(value)} characters long; "
                f"tokens are at most {MAX_TOKEN_LENGTH} — check the cell holds only the token"
            )
            return None
        return value

    def email_value(self) -> str | None:
        value = self.get("customer_email")
        if value is None:
            return None
        named = _NAMED_ADDRESS.fullmatch(value)
        address = named.group(1) if named else value
        if _EMAIL.fullmatch(address) and ".." not in address:
            return address
        self.add(
            f"column {self.name('customer_email')}: {value!r} is not an email address; "
            "write it as name@example.com (one address per cell)"
        )
        return None

    def source_type(self) -> str | None:
        value = self.get("payment_source_type")
        if value is None:
            return None
        api_type = normalize_source_type(value)
        if api_type is not None and value.strip().casefold() != api_type:
            self.type_given = value  # a loose spelling: kept so a 422 can say the id may be another type's
        if api_type is None:
            self.add(
                f"column {self.name('payment_source_type')}: {value!r} is not a payment source type; "
                f"use one of {', '.join(PAYMENT_SOURCE_TYPES)}"
            )
        return api_type

    def metadata(self, defaults: Mapping[str, object]) -> dict[str, object]:
        merged = dict(defaults)
        text = self.get("metadata")
        if text is not None:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                merged.update(parsed)
            else:
                self.add(
                    f"column {self.name('metadata')}: must be a JSON object, for example "
                    '{"key": "value"} (curly braces, keys and text in double quotes)'
                )
        typed = self.row.typed
        for target, value in self.row.fields.items():
            if target.startswith(METADATA_PREFIX) and value:
                # A workbook's number, boolean or date keeps its JSON type; text stays text.
                merged[target[len(METADATA_PREFIX) :]] = typed.get(target, value)
        return merged


def _check_customer(check: _Check) -> tuple[str | None, str | None]:
    has_id, has_email = check.get("customer_id") is not None, check.get("customer_email") is not None
    customer_id = check.id_value("customer_id")
    email = check.email_value()
    if not has_id and not has_email:
        check.add(
            f"no customer: fill in {check.name('customer_id')} (the customer's 10-character id) "
            f"or {check.name('customer_email')}"
        )
    return customer_id, email


def _check_source(check: _Check) -> dict[str, str | None]:
    type_text, source_id = check.get("payment_source_type"), check.get("payment_source_id")
    token = check.get("payment_source_token")
    source: dict[str, str | None] = {"payment_source_type": check.source_type()}
    if source_id is not None and token is not None:
        check.add(
            f"columns {check.name('payment_source_id')} and {check.name('payment_source_token')} are both "
            "filled in: give either the payment source id (with its type) or the token, not both"
        )
    if source_id is not None:
        source["payment_source_id"] = check.id_value("payment_source_id")
        if type_text is None:
            check.add(
                f"column {check.name('payment_source_type')} is empty: a payment source id needs its type, "
                f"one of {', '.join(PAYMENT_SOURCE_TYPES)}"
            )
        for extra in ("customer_token", "payment_method_id"):
            if token is None and check.get(extra) is not None:
                check.add(
                    f"column {check.name(extra)} only goes with a payment source token; "
                    f"empty it, or use {check.name('payment_source_token')} instead of "
                    f"{check.name('payment_source_id')}"
                )
    elif token is not None:
        source["payment_source_token"] = check.token_value("payment_source_token")
        source["customer_token"] = check.token_value("customer_token")
        source["payment_method_id"] = check.id_value("payment_method_id")
    elif type_text is not None:
        check.add(
            f"column {check.name('payment_source_id')} is empty: fill in the payment source's "
            f"10-character id (or give {check.name('payment_source_token')} instead)"
        )
    else:
        check.add(
            f"no payment source: fill in {check.name('payment_source_type')} + "
            f"{check.name('payment_source_id')}, or {check.name('payment_source_token')}"
        )
    return source


# json.dumps builds a new encoder on every call made with options; one is enough.
_encode_metadata = json.JSONEncoder(ensure_ascii=False).encode


def _check_lengths(check: _Check, metadata: Mapping[str, object]) -> None:
    for target in ("reference", "reference_origin"):
        value = check.get(target)
        if value is not None and len(value) > MAX_TEXT_LENGTH:
            check.add(
                f"column {check.name(target)}: the value is {len(value):,} characters long; at most "
                f"{MAX_TEXT_LENGTH:,} are sent — check the cell holds only the {target.replace('_', ' ')}"
            )
    size = len(_encode_metadata(metadata)) if metadata else 2  # "{}": most rows carry none
    if size > MAX_TEXT_LENGTH:
        check.add(
            f"metadata: {size:,} characters once written as JSON; at most {MAX_TEXT_LENGTH:,} are sent — "
            "keep only the keys the wallet entry needs"
        )


def validate_row(row: SourceRow, defaults: Defaults) -> Pairing | list[str]:
    """A `Pairing` for a good row, else the list of every problem (loader cell errors first)."""
    check = _Check(row)
    customer_id, email = _check_customer(check)
    source = _check_source(check)
    metadata = check.metadata(defaults.metadata)
    _check_lengths(check, metadata)
    if check.problems:
        return check.problems
    return Pairing(
        customer_id=customer_id,
        customer_email=email,
        payment_source_type=source.get("payment_source_type"),
        payment_source_id=source.get("payment_source_id"),
        payment_source_token=source.get("payment_source_token"),
        customer_token=source.get("customer_token"),
        payment_method_id=source.get("payment_method_id"),
        reference=check.get("reference"),
        reference_origin=check.get("reference_origin") or defaults.reference_origin,
        metadata=metadata,
        payment_source_type_given=check.type_given if source.get("payment_source_id") else None,
    )
