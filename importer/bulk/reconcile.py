"""Pure: an import's rows + the records read back + the import's final state → one outcome a row.

A row whose record is found (by `metadata.importer_key`, for its customer) is `created` with the
record's id. A row not found is `failed`, with its `errors_log` messages when the log's keys can
be mapped to rows, or sent again (once, when the import stopped before reaching every row). The
key form of `errors_log` is unconfirmed for customer_payment_sources, so mapping is best effort
and nothing else depends on it: a 0-based input index, the row's own `reference`, or its
`importer_key` are recognised; anything else is quoted in every unfound row's detail instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from importer.bulk.records import ChunkRow
from importer.models import Outcome, RowStatus

MAX_QUOTED = 3  # unmapped errors_log entries quoted in a failed row's detail


@dataclass(frozen=True, slots=True)
class Found:
    """A customer_payment_source read back from the API."""

    id: str
    customer_id: str | None
    source_refs: tuple[str, ...]
    importer_key: str | None


@dataclass(slots=True)
class Reconciled:
    settled: list[tuple[ChunkRow, Outcome]] = field(default_factory=list)
    resend: list[ChunkRow] = field(default_factory=list)


def _messages(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_messages(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_messages(v) for v in value)
    return str(value)


def map_errors(errors_log: Any, rows: list[ChunkRow]) -> tuple[dict[int, str], list[str]]:
    """errors_log → ({position: message}, [unmapped "key: message"])."""
    if not isinstance(errors_log, dict) or not errors_log:
        return {}, []
    references: dict[str, int] = {}
    for i, row in enumerate(rows):
        if row.reference:
            references[row.reference] = -1 if row.reference in references else i
    keys = {row.importer_key: i for i, row in enumerate(rows)}
    mapped: dict[int, str] = {}
    unmapped: list[str] = []
    for raw_key, value in errors_log.items():
        key = str(raw_key)
        position: int | None = None
        if key.isdigit() and int(key) < len(rows):
            position = int(key)
        elif references.get(key, -1) >= 0:
            position = references[key]
        elif key in keys:
            position = keys[key]
        if position is None:
            unmapped.append(f"{key}: {_messages(value)}")
        else:
            mapped[position] = _messages(value)
    return mapped, unmapped


def reconcile(
    reference: str,
    rows: list[ChunkRow],
    found: Iterable[Found],
    attributes: dict[str, Any] | None,
    *,
    may_resend: bool,
) -> Reconciled:
    by_key: dict[tuple[str, str], list[Found]] = {}
    by_pair: dict[str, Found] = {}
    for record in found:
        if record.customer_id is None:
            continue
        if record.importer_key:
            by_key.setdefault((record.customer_id, record.importer_key), []).append(record)
        for ref in record.source_refs:
            by_pair.setdefault(f"id:{record.customer_id}|{ref}", record)
    status = str((attributes or {}).get("status") or "missing")
    errors_count = (attributes or {}).get("errors_count")
    mapped, unmapped = map_errors((attributes or {}).get("errors_log"), rows)
    out = Reconciled()
    for position, row in enumerate(rows):
        hit = _same_source(by_key.get((row.customer_id, row.importer_key), []), row)
        if hit is not None:
            out.settled.append((row, Outcome(RowStatus.CREATED, hit.id, row.customer_id, attempts=1)))
            continue
        pair = by_pair.get(row.pairing_key)
        if pair is not None:
            # The pairing exists without our key: created by the import with its metadata
            # dropped (no key at all), or by someone else meanwhile (another key).
            kind = RowStatus.CREATED if not pair.importer_key else RowStatus.ALREADY_EXISTS
            out.settled.append((row, Outcome(kind, pair.id, row.customer_id, attempts=1)))
            continue
        if position in mapped:
            detail = f"import {reference} ({status}) refused the row: {mapped[position]}"
            out.settled.append((row, _failed(row, "IMPORT_ROW_ERROR", detail)))
        elif may_resend and status in ("interrupted", "missing"):
            out.resend.append(row)
        else:
            quoted = "; ".join(unmapped[:MAX_QUOTED])
            more = f" (+{len(unmapped) - MAX_QUOTED} more)" if len(unmapped) > MAX_QUOTED else ""
            log = f"; errors_log: {quoted}{more}" if quoted else ""
            detail = (
                f"not created by import {reference} ({status}, {errors_count} errors) and not found "
                f"when read back{log}"
            )
            out.settled.append((row, _failed(row, "IMPORT_ROW_FAILED", detail)))
    return out


def _same_source(candidates: list[Found], row: ChunkRow) -> Found | None:
    """The first record with the row's key that also points at the row's payment source (a
    row may bring its own importer_key, so the key alone is not proof)."""
    source = row.pairing_key.split("|", 1)[1]
    return next((r for r in candidates if not r.source_refs or source in r.source_refs), None)


def _failed(row: ChunkRow, code: str, detail: str) -> Outcome:
    return Outcome(RowStatus.FAILED, None, row.customer_id, None, code, detail, 1)
