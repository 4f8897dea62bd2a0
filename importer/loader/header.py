"""Which row is the header: title, notes and blank rows above a table are skipped.

Pure: works on cell texts. The header is the first row within the first 20 that holds the
required columns; without one, the row naming the most known columns is taken (or the first
non-blank row) and its missing-columns message explains, except when the table's header is
written over two rows (merged cells), which gets one message saying what to change.
`--header-row N` overrides the search.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from importer.headers import REQUIREMENTS, fitting_overrides, missing_required
from importer.loader.layout import Layout, header_texts, is_report, make_layout, missing_message

SEARCH_ROWS = 20
_SAMPLE_ROWS = 50


@dataclass(frozen=True)
class HeaderChoice:
    """The header's 0-based row index, its layout, and why the table cannot be read (None: it can)."""

    index: int
    layout: Layout
    problem: str | None


def _layout_for(
    start: int,
    headers: list[str],
    rows: Sequence[Sequence[str]],
    after: int,
    aliases: Mapping[str, Sequence[str]],
) -> Layout:
    """The layout, with aliases whose values do not fit their field demoted (see `fitting_overrides`)."""
    layout = make_layout(start, headers, aliases)
    if is_report(headers):
        return layout
    samples: dict[str, list[str]] = {}
    for header, column in zip(headers, range(start, start + len(headers)), strict=True):
        values = (
            row[column].strip() for row in rows[after + 1 : after + 1 + _SAMPLE_ROWS] if column < len(row)
        )
        samples[header] = [v for v in values if v]
    overrides = fitting_overrides(layout.header_map, samples, aliases)
    if not overrides:
        return layout
    return make_layout(start, headers, aliases, overrides)


def _two_row_message(rows: Sequence[Sequence[str]], first: int) -> str | None:
    """One message for a header split over rows `first` and `first + 1` (merged cells), if it is one."""
    if first + 1 >= len(rows):
        return None
    top_start, top = header_texts(rows[first])
    low_start, low = header_texts(rows[first + 1])
    if not low:
        return None
    top_span = set(range(top_start, top_start + len(top)))
    top_named = {top_start + i for i, h in enumerate(top) if h}
    low_named = {low_start + i for i, h in enumerate(low) if h}
    # Merged group titles ("Customer" over two columns, "Payment source" over two more) leave
    # blank cells between the top row's names, and the row below names those columns. A title
    # line above a table has no such gaps, so it is not taken for half a header.
    gaps = top_span - top_named
    if len(top_named) < 2 or not gaps or not gaps <= low_named:
        return None
    if len(low_named) < len(top_named):
        return None
    return (
        f"rows {first + 1} and {first + 2} look like one header written over two rows (merged cells): "
        f"the importer reads one header row, with one name per column; unmerge the cells and write each "
        f"column's full name (for example 'Customer Email') in row {first + 2}, delete row {first + 1}, "
        f"and run again; the columns must give {REQUIREMENTS}"
    )


def find_header(
    rows: Sequence[Sequence[str]],
    aliases: Mapping[str, Sequence[str]],
    *,
    forced: int | None = None,
    origin: int = 0,
) -> HeaderChoice | None:
    """The header among `rows` (cell texts, from row index 0); None when every row is blank.

    `origin`: index of the sheet's first row (1 for a CSV file whose first line is Excel's
    `sep=`); `forced`: the 0-based index given with `--header-row`.
    """
    if forced is not None:
        if forced >= len(rows) or not header_texts(rows[forced])[1]:
            return None
        start, headers = header_texts(rows[forced])
        layout = _layout_for(start, headers, rows, forced, aliases)
        return HeaderChoice(forced, layout, missing_message(layout))
    first: HeaderChoice | None = None
    closest: tuple[int, HeaderChoice] | None = None  # the row naming the most fields
    for index in range(origin, min(len(rows), origin + SEARCH_ROWS)):
        start, headers = header_texts(rows[index])
        if not headers:
            continue
        layout = make_layout(start, headers, aliases)
        if not missing_required(layout.header_map):
            layout = _layout_for(start, headers, rows, index, aliases)
            return HeaderChoice(index, layout, missing_message(layout))
        if first is None:
            two_rows = _two_row_message(rows, index)
            first = HeaderChoice(index, layout, two_rows or missing_message(layout))
            if two_rows:
                return first
        named = len(layout.header_map.columns)
        if named and (closest is None or named > closest[0]):
            closest = (named, HeaderChoice(index, layout, missing_message(layout)))
    if closest is not None:
        # No row has every required column: the message is about the row that comes closest
        # (a header missing a column), not about a title line above it.
        return closest[1]
    if first is None:
        for index in range(origin + SEARCH_ROWS, len(rows)):  # a table far below blank rows
            start, headers = header_texts(rows[index])
            if headers:
                layout = _layout_for(start, headers, rows, index, aliases)
                return HeaderChoice(index, layout, missing_message(layout))
    return first
