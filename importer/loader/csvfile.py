"""CSV/TSV/TXT files: find the header, then stream the rows in chunks (memory stays flat)."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence

import structlog

from importer.columns import REPORT_MARKER_COLUMNS
from importer.errors import SourceError
from importer.loader.formats import FileFormat, FileInfo
from importer.loader.header import SEARCH_ROWS, HeaderChoice, find_header
from importer.loader.layout import conflict_message
from importer.loader.rows import Tally, emit
from importer.loader.sniff import MAX_COLUMNS, TextFacts, inspect_text
from importer.models import SourceRow

_log = structlog.get_logger()
_MAX_LEADING_BLANK = 100
_HEAD_SAMPLE = 60
# A cell may be as long as the file (a 10 MB cell is fine); the stdlib default is 128 KiB.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))


class NotATable(SourceError):
    """The file's first rows hold no table header (raised so a folder can skip a README.txt)."""


def _head(path: str, facts: TextFacts, count: int) -> list[list[str]]:
    """The first `count` records as lists of cell texts (blank records are empty lists)."""
    try:
        with open(path, encoding=facts.encoding, newline="") as fh:
            return [list(r) for r in itertools.islice(csv.reader(fh, delimiter=facts.delimiter), count)]
    except csv.Error:
        return list(itertools.islice(_records(path, facts, 0), count - 1))


def text_header(
    path: str, facts: TextFacts, aliases: Mapping[str, Sequence[str]], forced: int | None
) -> HeaderChoice:
    """The header of a text file; `forced` is the 0-based record index given with --header-row."""
    origin = 1 if facts.sep_line else 0
    want = max(origin + _MAX_LEADING_BLANK, (forced or 0) + 1) + _HEAD_SAMPLE
    rows = _head(path, facts, want)
    if any(len(row) > MAX_COLUMNS for row in rows[: origin + SEARCH_ROWS]):
        # The sniffer only sees the file's first 64 KiB; a longer header row is counted here.
        raise SourceError(
            path, f"the header row has more than {MAX_COLUMNS:,} columns; is this really a table export?"
        )
    choice = find_header(rows, aliases, forced=forced, origin=origin)
    if choice is None:
        if forced is not None:
            raise SourceError(
                path, f"--header-row {forced + 1 - origin}: that row is empty or past the end of the file"
            )
        raise NotATable(
            path, "has no header row (only empty rows at its start); put the column names in row 1"
        )
    if choice.problem:
        raise NotATable(path, choice.problem)
    problem = conflict_message(choice.layout)
    if problem:
        raise SourceError(path, problem)
    return choice


def read_text(
    path: str,
    aliases: Mapping[str, Sequence[str]],
    chunk_rows: int,
    header_row: int | None,
    finish: Callable[[FileInfo], None],
) -> Iterator[SourceRow]:
    """`header_row`: the header's row number as Excel shows it (1-based), or None to find it."""
    facts = inspect_text(path)
    origin = 1 if facts.sep_line else 0
    forced = None if header_row is None else header_row - 1 + origin
    choice = text_header(path, facts, aliases, forced)
    layout, header_index = choice.layout, choice.index
    log_layout(path, "", choice, header_index + 1 - origin)
    tally = Tally()
    # 1-based header row + 1; Excel hides a "sep=" line, so its rows start one higher.
    first_number = header_index + 2 - origin
    for offset, cells in enumerate(_records(path, facts, header_index + 1)):
        row = emit(path, "", layout, tally, first_number + offset, cells, delimited=True)
        if row is not None:
            yield row
    finish(
        FileInfo(
            path,
            facts.sha256,
            FileFormat.CSV,
            encoding=facts.encoding,
            delimiter=facts.delimiter,
            rows=tally.rows,
            blank_rows=tally.blank + len(tally.totals),
            totals_rows=tuple(tally.totals),
            header_rows=(header_index + 1 - origin,),
            report=layout.report,
        )
    )


def log_layout(path: str, sheet: str, choice: HeaderChoice, row_number: int) -> None:
    """Which row was taken as the header, and the columns nothing maps to."""
    layout = choice.layout
    _log.info(
        "input.header_row",
        file=path,
        sheet=sheet,
        row=row_number,
        report=layout.report,
    )
    unknown = [h for h in layout.header_map.unknown if not layout.report or h not in _REPORT]
    if unknown:
        _log.info("input.unknown_columns", file=path, sheet=sheet, columns=unknown[:30], count=len(unknown))


_REPORT = frozenset(REPORT_MARKER_COLUMNS)


def _records(path: str, facts: TextFacts, skip: int) -> Iterator[list[str]]:
    """Every record after the first `skip`, streamed; a row keeps all its cells, however many.

    The stdlib reader, not pandas: pandas either drops the cells beyond the names it is given
    (usecols) or shifts the row into its index, and a dropped cell is a silently wrong value.
    """
    origin = 1 if facts.sep_line else 0
    with open(path, encoding=facts.encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=facts.delimiter)
        count, last = 0, None
        try:
            for count, record in enumerate(reader, 1):
                last = record
                if count > skip:
                    yield record
        except csv.Error as exc:
            raise SourceError(path, parser_message(exc, count + 1 - origin)) from exc
    if last and ("\n" in last[-1] or "\r" in last[-1]) and not _ends_with_quote(path, facts.encoding):
        # The stdlib reader takes a quote never closed as "the cell runs to the end of the file".
        raise SourceError(path, parser_message(csv.Error("unexpected end of data"), count - origin))


def _ends_with_quote(path: str, encoding: str) -> bool:
    """True when the file's last record ends with a closing quote (line breaks after it aside)."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(max(0, size - 64) & ~1)  # an even offset keeps UTF-16 aligned
        tail = fh.read().decode(encoding.replace("-sig", ""), errors="ignore")
    return tail.rstrip("\r\n").endswith('"')


def parser_message(exc: Exception, record: int) -> str:
    text = str(exc)
    if "unexpected end of data" in text or "EOF" in text:
        return (
            f'has a quote (") that is never closed, starting in row {record}; '
            "check that cell's quotes, or export the file again"
        )
    return f"cannot be read as CSV (row {record}): {text.strip()}; export it again as 'CSV UTF-8'"
