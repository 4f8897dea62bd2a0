"""Pure: make a 422 about a relationship say which record it was about.

The API says `payment_source - must exist (at /data/relationships/payment_source)`; the person
fixing the sheet needs the type and id that were sent, and, when the type was read from a loose
spelling ("Stripe", "Wire transfer"), the hint that the id may belong to another payment type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from importer.models import Pairing

_REL_PREFIX = "/data/relationships/"


def _pointers(body: Any) -> list[str]:
    errors = body.get("errors") if isinstance(body, Mapping) else None
    out: list[str] = []
    for err in errors if isinstance(errors, list) else []:
        source = err.get("source") if isinstance(err, Mapping) else None
        pointer = source.get("pointer") if isinstance(source, Mapping) else None
        if isinstance(pointer, str) and pointer.startswith(_REL_PREFIX):
            out.append(pointer)
    return out


def _sent(request_body: Mapping[str, Any], rel: str) -> tuple[str, str] | None:
    data = request_body.get("data")
    rels = data.get("relationships") if isinstance(data, Mapping) else None
    entry = rels.get(rel) if isinstance(rels, Mapping) else None
    linkage = entry.get("data") if isinstance(entry, Mapping) else None
    if (
        isinstance(linkage, Mapping)
        and isinstance(linkage.get("type"), str)
        and isinstance(linkage.get("id"), str)
    ):
        return linkage["type"], linkage["id"]
    return None


def relationship_detail(
    detail: str, response_body: Any, request_body: Mapping[str, Any], pairing: Pairing
) -> str:
    """`detail` plus, for each relationship the errors point at, the type and id that were sent."""
    notes: list[str] = []
    seen: set[str] = set()
    for pointer in _pointers(response_body):
        rel = pointer[len(_REL_PREFIX) :].split("/", 1)[0]
        if rel in seen:
            continue
        seen.add(rel)
        sent = _sent(request_body, rel)
        if sent is None:
            continue
        type_, id_ = sent
        note = f"{rel} sent as {type_} {id_}"
        given = pairing.payment_source_type_given
        if rel == "payment_source" and given:
            note += (
                f"; the type {type_} was read from {given!r}, so the id {id_} may belong to another "
                "payment type: check it in the Dashboard and write the exact type (e.g. "
                f"{type_}) in the payment_source_type column"
            )
        notes.append(note)
    return f"{detail} [{'; '.join(notes)}]" if notes else detail
