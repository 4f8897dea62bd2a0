"""A table's header row → how each column maps to a field, and the messages when it cannot.

Pure: works on cell texts. `header.py` decides WHICH row is the header; this module reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from importer.columns import ERROR_COLUMNS, FAILURE_LEAD_COLUMNS, REPORT_MARKER_COLUMNS
from importer.headers import HeaderMap, match_headers, missing_required
from importer.loader.cells import column_letter
from importer.neutralize import unneutralize

SHOWN_HEADERS = 30
MAP_HINT = "rename the columns, or map your headers under `columns:` in the config"
# An importer report (failures.csv) is recognised by these columns (TEAM contract 2).
SOURCE_COLUMNS = FAILURE_LEAD_COLUMNS
REPORT_COLUMNS = frozenset(REPORT_MARKER_COLUMNS)


@dataclass(frozen=True)
class Layout:
    """Per column from `start` (0-based; empty columns left of the table are not part of it):
    the header as written, the key in `SourceRow.raw`, the field it gives."""

    start: int
    headers: tuple[str, ...]
    keys: tuple[str, ...]
    targets: tuple[str | None, ...]
    header_map: HeaderMap
    # (sheet column, raw key, field, header for messages) per column: what `build_row` walks.
    plan: tuple[tuple[int, str, str | None, str], ...]
    # Field → raw key of the column that gives it; one mapping shared by every row of the sheet.
    columns: Mapping[str, str]
    # An importer report fed back: its formula-neutralization is undone, and the sheet columns of
    # source_file, source_sheet, source_row say where each row came from (None: none given).
    report: bool = False
    report_sources: tuple[int, int, int] | None = None

    @property
    def end(self) -> int:
        """One past the last column of the table."""
        return self.start + len(self.headers)


def raw_keys(start: int, headers: Sequence[str]) -> tuple[str, ...]:
    """Unique keys for `raw`: a blank header becomes "column C", a repeated one "Notes (column E)"."""
    keys: list[str] = []
    used: set[str] = set()
    for index, header in enumerate(headers, start):
        where = f"column {column_letter(index)}"
        if not header:
            key = where
        elif header in used:
            key = f"{header} ({where})"
        else:
            key = header
        while key in used:  # a real header may already be called "column E"
            key += "'"
        used.add(key)
        keys.append(key)
    return tuple(keys)


def header_texts(cells: Sequence[str]) -> tuple[int, list[str]]:
    """(first column, headers) of a header row; unnamed columns at either end are not part of
    the table (there is nothing to map them to), so the headers list is empty for a blank row."""
    headers = [cell.strip() for cell in cells]
    if headers:
        # A UTF-8 BOM read as Windows-1252 (a file mixing both) shows up as "ï»¿".
        headers[0] = headers[0].lstrip("\ufeff").removeprefix("\u00ef\u00bb\u00bf").strip()
    named = [index for index, header in enumerate(headers) if header]
    if not named:
        return 0, []
    return named[0], headers[named[0] : named[-1] + 1]


def is_report(headers: Sequence[str]) -> bool:
    """An importer report: the TEAM contract's five columns, or a 0.1 failures.csv (which ends
    with error_code, error_detail and has no source columns)."""
    return set(headers) >= REPORT_COLUMNS or tuple(headers[-2:]) == ERROR_COLUMNS


def make_layout(
    start: int,
    headers: Sequence[str],
    aliases: Mapping[str, Sequence[str]],
    overrides: Mapping[str, str | None] = MappingProxyType({}),
) -> Layout:
    """`overrides`: header → field (None: no field) where a column's values showed it is not
    the field its name suggests (see `headers.fitting_overrides`)."""
    report = is_report(headers)
    if report:  # our report neutralized its headers too (an input's extra column "=x")
        headers = [clean_report_cell(h) for h in headers]
        overrides = dict.fromkeys(h for h in headers if h in REPORT_COLUMNS)
    header_map = match_headers(headers, aliases, overrides=overrides)
    seen: set[str] = set()
    targets: list[str | None] = []
    for header in headers:
        # Only the first column of a repeated header is mapped; later ones are conflicts.
        targets.append(None if header in seen else header_map.columns.get(header))
        seen.add(header)
    keys = raw_keys(start, headers)
    plan = tuple(
        (start + i, key, target, header or key)
        for i, (key, target, header) in enumerate(zip(keys, targets, headers, strict=True))
        if not (report and header in REPORT_COLUMNS)  # where the row came from is not input
    )
    columns = MappingProxyType({t: k for k, t in zip(keys, targets, strict=True) if t is not None})
    sources = None
    if report and set(SOURCE_COLUMNS) <= set(headers):
        a, b, c = (start + list(headers).index(name) for name in SOURCE_COLUMNS)
        sources = (a, b, c)
    return Layout(start, tuple(headers), keys, tuple(targets), header_map, plan, columns, report, sources)


def shown(headers: Sequence[str]) -> str:
    named = [repr(h) for h in headers if h]
    if not named:
        return "none"
    more = f" … and {len(named) - SHOWN_HEADERS} more" if len(named) > SHOWN_HEADERS else ""
    return ", ".join(named[:SHOWN_HEADERS]) + more


def missing_message(layout: Layout) -> str | None:
    missing = missing_required(layout.header_map)
    if not missing:
        return None
    return (
        f"missing required columns: needs {' and '.join(missing)}; "
        f"found headers: {shown(layout.headers)} ({MAP_HINT})"
    )


def conflict_message(layout: Layout) -> str | None:
    if not layout.header_map.conflicts:
        return None
    c = layout.header_map.conflicts[0]
    return (
        f"columns {c.first!r} (column {column_letter(layout.start + c.first_index)}) and {c.second!r} "
        f"(column {column_letter(layout.start + c.second_index)}) both give {c.field}; "
        "delete or rename one of them"
    )


@dataclass(frozen=True)
class Skip:
    """Why a sheet is not read as a table: `reason` for the log, `found` for the summary error."""

    reason: str
    found: str


def clean_report_cell(text: str) -> str:
    """A cell of an importer report: our own formula-neutralization undone."""
    return unneutralize(text) if text[:1] == "'" else text
