"""What each resource type looks like over the API, and how a record becomes a JSON:API object.

Relationships carry only `links` unless they are named in `include`; then they also carry the
`data` linkage, and the related records go into the top-level `included` array (once each).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from importer.models import PAYMENT_SOURCE_TYPES
from importer.sandbox.persist import Record
from importer.sandbox.store import CPS, EXPORTS, IMPORTS, Store

Linkage = dict[str, str]
COMMON_ATTRIBUTES = ("created_at", "updated_at", "reference", "reference_origin", "metadata")
COMMON_FILTERS = {
    "id": "text",
    "created_at": "time",
    "updated_at": "time",
    "reference": "text",
    "reference_origin": "text",
    "metadata": "json",
}
COMMON_SORTS = ("id", "created_at", "updated_at", "reference", "reference_origin")


@dataclass(frozen=True, slots=True)
class Spec:
    type: str
    attributes: tuple[str, ...]
    relationships: tuple[str, ...] = ()
    filters: Mapping[str, str] = field(default_factory=dict)  # attribute -> text | email | time | json
    sortable: tuple[str, ...] = COMMON_SORTS
    includable: tuple[str, ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(("id", *self.attributes, *self.relationships))


SPECS: dict[str, Spec] = {
    "customers": Spec(
        "customers",
        ("email", "status", *COMMON_ATTRIBUTES),
        relationships=("customer_payment_sources",),
        filters={**COMMON_FILTERS, "email": "email", "status": "text"},
        sortable=(*COMMON_SORTS, "email"),
        includable=("customer_payment_sources",),
    ),
    "payment_methods": Spec(
        "payment_methods",
        ("name", "payment_source_type", "currency_code", "disabled_at", *COMMON_ATTRIBUTES),
        filters={**COMMON_FILTERS, "name": "text", "payment_source_type": "text", "currency_code": "text"},
    ),
    CPS: Spec(
        CPS,
        ("name", "customer_token", "payment_source_token", *COMMON_ATTRIBUTES),
        relationships=("customer", "payment_method", "payment_source", "versions"),
        filters={
            **COMMON_FILTERS,
            "name": "text",
            "customer_id": "text",
            "payment_method_id": "text",
            "payment_source_token": "text",
        },
        includable=("customer", "payment_method", "payment_source"),
    ),
    IMPORTS: Spec(
        IMPORTS,
        (
            "resource_type",
            "format",
            "parent_resource_id",
            "status",
            "started_at",
            "completed_at",
            "interrupted_at",
            "inputs_size",
            "errors_count",
            "warnings_count",
            "processed_count",
            "destroyed_count",
            "errors_log",
            "warnings_log",
            "skip_errors",
            "attachment_url",
            *COMMON_ATTRIBUTES,
        ),
        filters={**COMMON_FILTERS, "resource_type": "text", "status": "text", "format": "text"},
        sortable=(*COMMON_SORTS, "status"),
    ),
    EXPORTS: Spec(
        EXPORTS,
        (
            "resource_type",
            "format",
            "status",
            "includes",
            "fields",
            "filters",
            "dry_data",
            "started_at",
            "completed_at",
            "interrupted_at",
            "records_count",
            "processed_count",
            "attachment_url",
            "errors_log",
            *COMMON_ATTRIBUTES,
        ),
        filters={**COMMON_FILTERS, "resource_type": "text", "status": "text"},
        sortable=(*COMMON_SORTS, "status"),
    ),
} | {
    t: Spec(t, ("name", *COMMON_ATTRIBUTES), filters={**COMMON_FILTERS, "name": "text"})
    for t in PAYMENT_SOURCE_TYPES
}


def linkage(store: Store, type_: str, record: Record, rel: str) -> Linkage | list[Linkage] | None:
    """The {type, id} the relationship points at (a list for to-many ones)."""
    if type_ == CPS:
        if rel == "customer":
            return {"type": "customers", "id": record["customer_id"]} if record.get("customer_id") else None
        if rel == "payment_method":
            pm = record.get("payment_method_id")
            return {"type": "payment_methods", "id": pm} if pm else None
        if rel == "payment_source":
            ps = record.get("payment_source_id")
            return {"type": record["payment_source_type"], "id": ps} if ps else None
        return []  # versions: the sandbox keeps no versions
    if type_ == "customers" and rel == "customer_payment_sources":
        table = store.tables[CPS]
        ids = table.lookup("customer_id", record["id"])
        ordered = sorted(ids, key=lambda i: (table.rows[i]["created_at"], i))
        return [{"type": CPS, "id": i} for i in ordered]
    return None


class Renderer:
    def __init__(self, store: Store, base_url: str, mode: str) -> None:
        self.store = store
        self.base = base_url
        self.mode = mode

    def resource(
        self,
        type_: str,
        record: Record,
        include: Iterable[str] = (),
        fields: Mapping[str, frozenset[str]] | None = None,
    ) -> dict[str, Any]:
        spec = SPECS[type_]
        wanted = fields.get(type_) if fields else None
        self_url = f"{self.base}/api/{type_}/{record['id']}"
        relationships: dict[str, Any] = {}
        for rel in spec.relationships:
            if wanted is not None and rel not in wanted:
                continue
            entry: dict[str, Any] = {
                "links": {"self": f"{self_url}/relationships/{rel}", "related": f"{self_url}/{rel}"}
            }
            if rel in include:
                entry["data"] = linkage(self.store, type_, record, rel)
            relationships[rel] = entry
        out: dict[str, Any] = {
            "id": record["id"],
            "type": type_,
            "links": {"self": self_url},
            "attributes": {a: record.get(a) for a in spec.attributes if wanted is None or a in wanted},
        }
        if relationships:
            out["relationships"] = relationships
        out["meta"] = {"mode": self.mode}
        return out

    def document(
        self,
        type_: str,
        records: Record | list[Record] | None,
        include: tuple[str, ...] = (),
        fields: Mapping[str, frozenset[str]] | None = None,
    ) -> dict[str, Any]:
        """`{"data": ...}` for one record (or None) or a list, plus `included` when asked."""
        many = records if isinstance(records, list) else [] if records is None else [records]
        data = [self.resource(type_, r, include, fields) for r in many]
        doc: dict[str, Any] = {"data": data if isinstance(records, list) else (data[0] if data else None)}
        if include:
            doc["included"] = self._included(type_, many, include, fields)
        return doc

    def _included(
        self,
        type_: str,
        records: list[Record],
        include: tuple[str, ...],
        fields: Mapping[str, frozenset[str]] | None,
    ) -> list[dict[str, Any]]:
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for record in records:
            for rel in include:
                target = linkage(self.store, type_, record, rel)
                for link in target if isinstance(target, list) else [target] if target else []:
                    key = (link["type"], link["id"])
                    related = self.store.get(*key)
                    if key not in seen and related is not None:
                        seen[key] = self.resource(link["type"], related, (), fields)
        return list(seen.values())
