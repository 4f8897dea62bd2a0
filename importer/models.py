"""Value objects shared by the loader, validator, planner, dispatcher, journal and report.

They are frozen where they cross a boundary, so no stage can change what another one saw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

# The ten polymorphic types the API accepts for `payment_source` (schema 7.9.16).
PAYMENT_SOURCE_TYPES: tuple[str, ...] = (
    "adyen_payments",
    "axerve_payments",
    "braintree_payments",
    "checkout_com_payments",
    "external_payments",
    "klarna_payments",
    "paypal_payments",
    "satispay_payments",
    "stripe_payments",
    "wire_transfers",
)

# Canonical input fields. `metadata.<key>` columns come on top of these.
CUSTOMER_FIELDS = ("customer_id", "customer_email")
SOURCE_FIELDS = (
    "payment_source_type",
    "payment_source_id",
    "payment_source_token",
    "customer_token",
    "payment_method_id",
)
ATTRIBUTE_FIELDS = ("reference", "reference_origin", "metadata")
CANONICAL_FIELDS: tuple[str, ...] = CUSTOMER_FIELDS + SOURCE_FIELDS + ATTRIBUTE_FIELDS
# The fields that name a customer and a payment source: cleaned of invisible characters by the
# validator, and empty (or the label) in a totals row.
KEY_FIELDS = frozenset(CUSTOMER_FIELDS + SOURCE_FIELDS)
METADATA_PREFIX = "metadata."


class RowStatus(StrEnum):
    """Every input row ends in exactly one of these (see README, "Reconciliation report")."""

    CREATED = "created"
    ALREADY_EXISTS = "already_exists"
    WOULD_CREATE = "would_create"
    VALID = "valid"
    INVALID = "invalid"
    DUPLICATE_IN_FILE = "duplicate_in_file"
    FAILED = "failed"
    NOT_ATTEMPTED = "not_attempted"
    # `run --on-existing update`: an existing entry's reference/reference_origin/metadata changed.
    UPDATED = "updated"
    WOULD_UPDATE = "would_update"
    # Deliberately left alone: by `undo` (not created by the run, or not ours), or by `run` (a
    # pairing that `undo` deleted, without --recreate-undone).
    SKIPPED = "skipped"
    # `importer undo`.
    DELETED = "deleted"
    ALREADY_DELETED = "already_deleted"
    WOULD_DELETE = "would_delete"


# Statuses that count as success for the exit code.
SUCCESS_STATUSES = frozenset(
    {
        RowStatus.CREATED,
        RowStatus.ALREADY_EXISTS,
        RowStatus.WOULD_CREATE,
        RowStatus.VALID,
        RowStatus.UPDATED,
        RowStatus.WOULD_UPDATE,
        RowStatus.SKIPPED,
        RowStatus.DELETED,
        RowStatus.ALREADY_DELETED,
        RowStatus.WOULD_DELETE,
    }
)

_IMPORT_STATUSES = (
    RowStatus.CREATED,
    RowStatus.ALREADY_EXISTS,
    RowStatus.WOULD_CREATE,
    RowStatus.VALID,
    RowStatus.INVALID,
    RowStatus.DUPLICATE_IN_FILE,
    RowStatus.FAILED,
    RowStatus.NOT_ATTEMPTED,
)
_UNDO_STATUSES = (
    RowStatus.DELETED,
    RowStatus.ALREADY_DELETED,
    RowStatus.WOULD_DELETE,
    RowStatus.SKIPPED,
    RowStatus.FAILED,
    RowStatus.NOT_ATTEMPTED,
)


def statuses_for(command: str | None) -> tuple[RowStatus, ...]:
    """The statuses a command's summary counts (zeros included), in display order."""
    if command == "undo":
        return _UNDO_STATUSES
    if command == "run":
        return (*_IMPORT_STATUSES, RowStatus.UPDATED, RowStatus.WOULD_UPDATE, RowStatus.SKIPPED)
    return _IMPORT_STATUSES


def row_where(source_file: str, sheet: str, row_number: int) -> str:
    """A row as details, messages and the summary name it: `file [sheet] row n` (no brackets
    for a file without sheets). One spelling, so a person can search the report for it."""
    return f"{source_file} [{sheet}] row {row_number}" if sheet else f"{source_file} row {row_number}"


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One non-blank input row, as a person sees it in the spreadsheet.

    `raw` keeps the original headers and the original (trimmed, de-neutralized) cell text, so
    that failures.csv can give the row back exactly as it came. `fields` maps canonical field
    names (and `metadata.<key>`) to the same text. `cell_errors` are problems the loader saw in
    a cell that validation cannot see from text alone (for example a 16-digit id that Excel
    stored as a number and so already lost digits). `columns` maps each field to the `raw` key
    (the header) it came from, so messages name the column as the file does; the loader shares
    one mapping between all rows of a sheet.
    """

    source_file: str
    sheet: str
    row_number: int
    raw: dict[str, str]
    fields: dict[str, str]
    cell_errors: tuple[str, ...] = ()
    columns: Mapping[str, str] = field(default_factory=dict)
    # `metadata.<key>` → the workbook's own value (number, boolean, ISO date) where it had one;
    # the metadata keeps that JSON type instead of the cell's text (README, "Input rules").
    typed: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Pairing:
    """A validated customer → payment-source pairing, ready to be planned into a request.

    The customer is `customer_id` when given, else `customer_email` (resolved to an id over the
    API at run time). The e-mail is kept as written (trimmed), because the API may match e-mails
    case-sensitively; keys use its lower-case form, so case variants are the same customer. A
    row with both must name the same customer (checked at run time, prepare.py).
    Exactly one source shape is used: `payment_source_type` + `payment_source_id`, or the token
    shape (`payment_source_token`, with optional `customer_token` and `payment_method_id`).
    """

    customer_id: str | None
    customer_email: str | None
    payment_source_type: str | None = None
    payment_source_id: str | None = None
    payment_source_token: str | None = None
    customer_token: str | None = None
    payment_method_id: str | None = None
    reference: str | None = None
    reference_origin: str | None = None
    metadata: dict[str, object] = field(default_factory=dict)
    # How the sheet spelled the type when it was not the API's own name ("Stripe" for
    # stripe_payments): a 422 about the payment source then says the id may be another type's.
    payment_source_type_given: str | None = None

    @property
    def customer_ref(self) -> str:
        """How the customer is named in the input: `id:<id>` or `email:<email>`."""
        if self.customer_id:
            return f"id:{self.customer_id}"
        return f"email:{(self.customer_email or '').lower()}"

    @property
    def source_ref(self) -> str:
        """The payment source's natural key: `<type>:<id>` or `token:<token>`."""
        if self.payment_source_id:
            return f"{self.payment_source_type}:{self.payment_source_id}"
        return f"token:{self.payment_source_token}"

    def key(self, customer_id: str | None = None) -> str:
        """The pairing key: one wallet entry per key must exist after any run.

        Before the email is resolved the key names the customer as given; pass the resolved
        `customer_id` to get the key that identifies the wallet entry in the API.
        """
        customer = f"id:{customer_id}" if customer_id else self.customer_ref
        return f"{customer}|{self.source_ref}"

    def to_json(self) -> str:
        extra = {"payment_source_type_given": self.payment_source_type_given}
        return _PAIRING_ENCODER.encode(
            {
                **(extra if self.payment_source_type_given else {}),
                "customer_id": self.customer_id,
                "customer_email": self.customer_email,
                "payment_source_type": self.payment_source_type,
                "payment_source_id": self.payment_source_id,
                "payment_source_token": self.payment_source_token,
                "customer_token": self.customer_token,
                "payment_method_id": self.payment_method_id,
                "reference": self.reference,
                "reference_origin": self.reference_origin,
                "metadata": self.metadata,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Pairing:
        data = json.loads(text)
        return cls(**data)


# json.dumps builds a new encoder on every call made with options; one per process is enough.
_PAIRING_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def pairing_digest(key: str) -> str:
    """A short stable digest of a pairing key, stamped into metadata so our records can be found."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one valid row over the API (or why nothing happened)."""

    status: RowStatus
    customer_payment_source_id: str | None = None
    customer_id: str | None = None
    http_status: int | None = None
    error_code: str | None = None
    error_detail: str | None = None
    attempts: int = 0
    changed_fields: str | None = None  # `updated` rows: which fields changed, e.g. "reference;metadata.tier"
