"""Model validation of a new customer_payment_source, shared by the POST handler and imports.

The POST handler renders each `Issue` as a 422 VALIDATION_ERROR; the imports worker writes it to
`errors_log` as `{field: [message]}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from importer.models import PAYMENT_SOURCE_TYPES
from importer.sandbox.jsonapi import validation_error
from importer.sandbox.store import CPS, Store, pair_key


@dataclass(frozen=True, slots=True)
class CpsInput:
    customer_id: str | None
    payment_method_id: str | None = None
    payment_source_type: str | None = None
    payment_source_id: str | None = None
    customer_token: str | None = None
    payment_source_token: str | None = None
    reference: str | None = None
    reference_origin: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Issue:
    field: str
    message: str
    key: str  # the Rails error key, sent as meta.error
    pointer: str
    value: Any = None

    def to_error(self) -> dict[str, Any]:
        return validation_error(self.field, self.message, self.key, self.pointer, self.value)


def _rel(name: str) -> str:
    return f"/data/relationships/{name}"


def check(store: Store, given: CpsInput, *, reject_duplicates: bool) -> list[Issue]:
    issues: list[Issue] = []
    if not given.customer_id:
        issues.append(Issue("customer", "can't be blank", "blank", _rel("customer")))
    elif store.get("customers", given.customer_id) is None:
        issues.append(Issue("customer", "must exist", "required", _rel("customer")))
    if given.payment_method_id and store.get("payment_methods", given.payment_method_id) is None:
        issues.append(Issue("payment_method", "must exist", "required", _rel("payment_method")))
    if given.payment_source_type is not None or given.payment_source_id is not None:
        if given.payment_source_type not in PAYMENT_SOURCE_TYPES:
            issues.append(
                Issue(
                    "payment_source",
                    "is not included in the list",
                    "inclusion",
                    "/data/relationships/payment_source/data/type",
                    given.payment_source_type,
                )
            )
        elif (
            not given.payment_source_id
            or store.get(given.payment_source_type, given.payment_source_id) is None
        ):
            issues.append(Issue("payment_source", "must exist", "required", _rel("payment_source")))
    if reject_duplicates and not issues:
        key = pair_key(_attributes(given))
        if key is not None and store.tables[CPS].lookup("pair", key):
            if given.payment_source_id:
                issues.append(
                    Issue("payment_source", "has already been taken", "taken", _rel("payment_source"))
                )
            else:
                issues.append(
                    Issue(
                        "payment_source_token",
                        "has already been taken",
                        "taken",
                        "/data/attributes/payment_source_token",
                        given.payment_source_token,
                    )
                )
    return issues


def _attributes(given: CpsInput) -> dict[str, Any]:
    return {
        "customer_id": given.customer_id,
        "payment_method_id": given.payment_method_id or None,
        "payment_source_type": given.payment_source_type if given.payment_source_id else None,
        "payment_source_id": given.payment_source_id or None,
        "customer_token": given.customer_token,
        "payment_source_token": given.payment_source_token,
        "reference": given.reference,
        "reference_origin": given.reference_origin,
        "metadata": dict(given.metadata),
    }


def build(store: Store, given: CpsInput) -> dict[str, Any]:
    """The attributes of the record to create (call only when `check` found nothing)."""
    attributes = _attributes(given)
    attributes["name"] = derive_name(store, given)
    return attributes


def derive_name(store: Store, given: CpsInput) -> str | None:
    """The payment source's name; in the token shape `XXXX-XXXX-XXXX-` + the token's last 4."""
    if given.payment_source_type and given.payment_source_id:
        source = store.get(given.payment_source_type, given.payment_source_id)
        if source is not None:
            return str(source["name"]) if source.get("name") is not None else None
    token = given.payment_source_token
    if token and len(token) >= 4:
        return f"XXXX-XXXX-XXXX-{token[-4:]}"
    return None
