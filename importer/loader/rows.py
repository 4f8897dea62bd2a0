"""One row of cells → a `SourceRow` (or a blank/totals row skipped), and the counts per file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import structlog

from importer.loader.cells import cell_error, json_value
from importer.loader.layout import Layout
from importer.loader.totals import is_totals_row
from importer.models import METADATA_PREFIX, SourceRow
from importer.neutralize import unneutralize

_log = structlog.get_logger()
_NO_ERRORS: Mapping[int, str] = MappingProxyType({})
_SHOWN_EXTRA = 5
# Values beyond the header's last column are kept under this column, so failures.csv carries
# them and a re-fed row stays invalid until a person has put them back where they belong.
EXTRA_VALUES_COLUMN = "extra_values"


@dataclass
class Tally:
    """Counts for one file. Blank rows count only once a data row follows them: trailing
    blank rows are usually leftover formatting, not rows a person skipped."""

    rows: int = 0
    blank: int = 0
    pending_blank: int = 0
    totals: list[int] = field(default_factory=list)
    hidden: int = 0


def _extra_values(layout: Layout, cells: Sequence[object]) -> list[str]:
    return [c.strip() for c in cells[layout.end :] if isinstance(c, str) and c.strip()]


def _extra_cells(extra: list[str], delimited: bool) -> str:
    """The message for values beyond the header's last column: they would otherwise be lost."""
    shown = ", ".join(repr(text) for text in extra[:_SHOWN_EXTRA])
    more = f" and {len(extra) - _SHOWN_EXTRA} more" if len(extra) > _SHOWN_EXTRA else ""
    count = f"{len(extra)} more value{'s' if len(extra) != 1 else ''}"
    if delimited:
        return (
            f"the row has {count} than the header has columns: {shown}{more}; most likely a value "
            "contains the delimiter without quotes (for example `Invoice 2024-000, Rossi`): put that "
            "value in double quotes, or export the file again"
        )
    return (
        f"the row has {count} to the right of the last column with a header: {shown}{more}; "
        "give that column a header, or clear those cells"
    )


def _kept_extra_values(kept: str) -> str:
    """A re-fed failures.csv whose `extra_values` cell still holds what an earlier read cut off."""
    return (
        f"column '{EXTRA_VALUES_COLUMN}' still holds {kept!r}: values an earlier read found beyond "
        "the header's last column (most likely part of a value that held the delimiter without "
        f"quotes). Put them back into the column they belong to, then empty '{EXTRA_VALUES_COLUMN}'"
    )


def build_row(
    layout: Layout,
    cells: Sequence[object],
    lost_digits: frozenset[int] = frozenset(),
    error_cells: Mapping[int, str] = _NO_ERRORS,
    values: Sequence[object] | None = None,
) -> tuple[dict[str, str], dict[str, str], list[str], dict[str, object]] | None:
    """raw, fields, cell errors and typed metadata values for one row; None for a blank row.

    `cells`, `lost_digits` and `error_cells` use sheet column indexes (0 = column A); `values`
    are the workbook's own values (numbers, booleans, dates) for `metadata.<key>` columns.
    This runs once per row of every file, so it is kept flat.
    """
    raw: dict[str, str] = {}
    fields: dict[str, str] = {}
    errors: list[str] = []
    typed: dict[str, object] = {}
    blank = True
    available = len(cells)
    report = layout.report
    for column, key, target, header in layout.plan:
        cell = cells[column] if column < available else ""
        text = cell.strip() if isinstance(cell, str) else ""
        if report and text[:1] == "'":
            text = unneutralize(text)  # only our own reports are neutralized by us
        if error_cells and column in error_cells:
            text = error_cells[column]
        raw[key] = text
        if not text:
            continue
        blank = False
        if target is None:
            continue  # problems in columns we ignore must not fail the row
        fields[target] = text
        problem = cell_error(header, text, column in lost_digits)
        if problem:
            errors.append(problem)
        if values is not None and target.startswith(METADATA_PREFIX) and column < len(values):
            value = json_value(values[column])
            if value is not None:
                typed[target] = value
    if blank:
        return None
    return raw, fields, errors, typed


def emit(
    path: str,
    sheet: str,
    layout: Layout,
    tally: Tally,
    number: int,
    cells: Sequence[object],
    *,
    delimited: bool,
    lost_digits: frozenset[int] = frozenset(),
    error_cells: Mapping[int, str] = _NO_ERRORS,
    values: Sequence[object] | None = None,
) -> SourceRow | None:
    """The row as a `SourceRow`, or None for a blank or totals row (counted in `tally`)."""
    built = build_row(layout, cells, lost_digits, error_cells, values)
    if built is None:
        tally.pending_blank += 1
        return None
    raw, fields, errors, typed = built
    kept = raw.get(EXTRA_VALUES_COLUMN)
    extra = _extra_values(layout, cells) if len(cells) > layout.end else []
    if extra:
        errors.append(_extra_cells(extra, delimited))
        raw[EXTRA_VALUES_COLUMN] = " | ".join([kept, *extra] if kept else extra)
    elif kept:
        errors.append(_kept_extra_values(kept))
    if not errors and not layout.report:
        label = is_totals_row(raw, fields, layout.columns)
        if label is not None:
            tally.totals.append(number)
            _log.info("input.totals_row_skipped", file=path, sheet=sheet, row=number, label=label)
            return None
    tally.blank += tally.pending_blank
    tally.pending_blank = 0
    tally.rows += 1
    if layout.report_sources is not None:
        path, sheet, number = _report_source(layout.report_sources, cells, (path, sheet, number))
    return SourceRow(path, sheet, number, raw, fields, tuple(errors), layout.columns, typed)


def _report_source(
    columns: tuple[int, int, int], cells: Sequence[object], fallback: tuple[str, str, int]
) -> tuple[str, str, int]:
    """Where a re-fed report row came from: its source_* cells, where filled in and sound."""

    def cell(index: int) -> str:
        value = cells[index] if index < len(cells) else ""
        return value.strip() if isinstance(value, str) else ""

    source_file, source_sheet, source_row = (cell(i) for i in columns)
    if not source_file or not source_row.isdigit():
        return fallback
    return unneutralize(source_file), unneutralize(source_sheet), int(source_row)
