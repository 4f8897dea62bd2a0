"""The report's columns, in one place, and the input values a row carries into the report.

results.csv has a fixed header (`REPORT_COLUMNS`, a machine contract that the README lists).
failures.csv is built to be fed back in: `FAILURE_LEAD_COLUMNS` (where the row came from), one
column per canonical field under its canonical name whatever the input called it, the inputs'
other columns, then `ERROR_COLUMNS`. The loader recognises a file whose header holds all of
`REPORT_MARKER_COLUMNS` as one of our reports.
"""

from __future__ import annotations

import functools
import re

from importer.models import CANONICAL_FIELDS, METADATA_PREFIX, SourceRow

REPORT_COLUMNS: tuple[str, ...] = (
    "source_file",
    "sheet",
    "row_number",
    "status",
    "customer_payment_source_id",
    "customer_id",
    "customer_email",
    "payment_source_type",
    "payment_source_id",
    "payment_source_token",
    "reference",
    "http_status",
    "error_code",
    "error_detail",
    "attempts",
    # `run --on-existing update`: the fields an `updated` row changed, `;`-separated.
    "changed_fields",
)
# Input fields that results.csv shows; an invalid row shows them as they were typed.
REPORT_INPUT_FIELDS: tuple[str, ...] = (
    "customer_id",
    "customer_email",
    "payment_source_type",
    "payment_source_id",
    "payment_source_token",
    "reference",
)

FAILURE_LEAD_COLUMNS: tuple[str, ...] = ("source_file", "source_sheet", "source_row")
ERROR_COLUMNS: tuple[str, ...] = ("error_code", "error_detail")
REPORT_MARKER_COLUMNS: tuple[str, ...] = (*FAILURE_LEAD_COLUMNS, *ERROR_COLUMNS)
# Written even when no failing row uses them, so that failures.csv always has the columns the
# loader requires and a header-only file loads as "0 rows".
FAILURE_CORE_FIELDS: tuple[str, ...] = (
    "customer_id",
    "customer_email",
    "payment_source_type",
    "payment_source_id",
    "payment_source_token",
)


@functools.lru_cache(maxsize=4096)  # a few distinct headers, asked about on every row
def header_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


_NOT_INPUT = frozenset(REPORT_MARKER_COLUMNS)


def input_values(row: SourceRow) -> dict[str, str]:
    """The row's non-empty cells keyed by canonical field name (`customer_email`,
    `metadata.<key>`, …), then its other columns under their own headers. A re-fed report's
    `source_*`/`error_*` columns are not input and are dropped (they are written afresh)."""
    raw = row.raw
    values: dict[str, str] = {}
    mapped: set[str] = set()
    for target, header in row.columns.items():
        mapped.add(header)
        text = raw.get(header)
        if text:
            values[target] = text
    for header, text in raw.items():
        if text and header not in mapped and not is_report_column(header):
            values.setdefault(header, text)
    return values


def is_report_column(name: str) -> bool:
    """`source_file`, `Error Code`, …: a column of our own report, not input."""
    return header_key(name) in _NOT_INPUT


def is_field(name: str) -> bool:
    return name in CANONICAL_FIELDS or name.startswith(METADATA_PREFIX)


def failure_columns(names: dict[str, None]) -> list[str]:
    """failures.csv's value columns for the union `names` of the failing rows' keys: the core
    fields and any other canonical field in canonical order, `metadata.<key>` fields and the
    extra columns in order of first appearance."""
    fields = [f for f in CANONICAL_FIELDS if f in FAILURE_CORE_FIELDS or f in names]
    metadata = [n for n in names if n.startswith(METADATA_PREFIX)]
    extras = [n for n in names if not is_field(n)]
    return [*fields, *metadata, *extras]
