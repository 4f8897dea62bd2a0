"""Read CSV and Excel files as a person sees them and stream them as `SourceRow`s.

This is the I/O edge and the only module that imports pandas. Everything a person would call
"the same file" reads the same: every cell is text (`00123` stays `00123`), numbers Excel
stored come out as the digits Excel shows, values are trimmed, blank rows are skipped but
still take up their row number, and row numbers are the ones a person sees in Excel or
LibreOffice (header = the header's row, usually 1; for CSV the record's ordinal, so a quoted
multi-line cell is one row, as LibreOffice shows it after import).

Memory stays flat for CSV: the file is checked for its encoding in one streaming pass (so
no row is ever yielded twice after a late encoding surprise) and then parsed in chunks.
A workbook sheet is read whole (calamine has no streaming reader), one sheet at a time.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import math
import numbers
import os
import posixpath
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any
from xml.etree import ElementTree

import pandas as pd
import structlog
from python_calamine import SheetTypeEnum, SheetVisibleEnum

from importer.errors import ConfigError, SourceError
from importer.headers import REQUIREMENTS, HeaderMap, check_aliases, match_headers, missing_required
from importer.models import SourceRow
from importer.neutralize import unneutralize

_log = structlog.get_logger()


class FileFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    XLS = "xls"
    ODS = "ods"


EXTENSIONS: Mapping[str, FileFormat] = MappingProxyType(
    {
        ".csv": FileFormat.CSV,
        ".tsv": FileFormat.CSV,
        ".txt": FileFormat.CSV,
        ".xlsx": FileFormat.XLSX,
        ".xlsm": FileFormat.XLSX,
        ".xls": FileFormat.XLS,
        ".ods": FileFormat.ODS,
    }
)


@dataclass(frozen=True)
class FileInfo:
    """What was read from one input file; `rows` counts non-blank rows yielded."""

    path: str
    sha256: str
    format: FileFormat
    encoding: str | None = None
    delimiter: str | None = None
    sheets: tuple[str, ...] = ()
    sheets_skipped: tuple[str, ...] = ()
    rows: int = 0
    blank_rows: int = 0


_NO_ALIASES: Mapping[str, Sequence[str]] = MappingProxyType({})
_BLOCK = 1 << 20
_SNIFF_CHARS = 64 * 1024
_SNIFF_RECORDS = 200
_DELIMITERS = ",;\t|"
_MAX_COLUMNS = 16_384  # Excel's limit; more in a header row means the delimiter is wrong or it is not a table
_MAX_LEADING_BLANK = 100
_SHOWN_HEADERS = 30
_UNDEFINED_CP1252 = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_NOT_TEXT = "is not a CSV/text file in UTF-8, UTF-16 or Windows-1252; export it again as 'CSV UTF-8'"
# First bytes of files people rename to .csv by mistake, with what to tell them.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive (an .xlsx or .ods workbook?), not a CSV/text file"),
    (b"\xd0\xcf\x11\xe0", "an old-style Office file (an .xls workbook?), not a CSV/text file"),
    (b"%PDF", "a PDF, not a CSV/text file"),
)
# What a cell shows when its formula failed. Excel writes these as text into CSV exports.
ERROR_LITERALS = frozenset(
    {
        "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
        "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!", "#EXTERNAL!",
    }
)  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Cells → text
# ----------------------------------------------------------------------------------------------


def _number_text(value: float) -> tuple[str, bool]:
    """Digits as Excel shows them, no exponent; True when Excel has already lost digits.

    Excel keeps 15 significant digits of a number, so an integer of 16+ digits stored as a
    number cannot be trusted. Integers come from the shortest repr of the stored double (the
    value as written in the file); fractions are rounded to 15 significant digits, as Excel's
    formula bar shows them (so 0.1+0.2 reads 0.3, not 0.30000000000000004).
    """
    if not math.isfinite(value):
        return str(value), False
    if value.is_integer() or abs(value) >= 1e15:
        return str(int(Decimal(repr(value)).to_integral_value())), abs(value) >= 1e15
    return format(Decimal(f"{value:.15g}"), "f"), False


def excel_cell_text(value: object) -> tuple[str, bool]:
    """A workbook cell as the text a person sees; True when it is a number that lost digits."""
    if value is None or value is pd.NaT:
        return "", False
    if isinstance(value, str):
        return value, False
    if isinstance(value, bool):  # before numbers: bool is an int
        return ("TRUE" if value else "FALSE"), False
    if isinstance(value, numbers.Real):
        as_float = float(value)
        if math.isnan(as_float):
            return "", False
        return _number_text(as_float)
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat(), False
        return value.strftime("%Y-%m-%d %H:%M:%S"), False
    if isinstance(value, date):
        return value.isoformat(), False
    if isinstance(value, time):
        return value.strftime("%H:%M:%S"), False
    if isinstance(value, timedelta):
        return str(value), False
    return str(value), False


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA: the column name a person sees."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _clean(text: str) -> str:
    text = text.strip()
    return unneutralize(text) if text[:1] == "'" else text


# ----------------------------------------------------------------------------------------------
# Header row → layout
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Per column from `start` (0-based; empty columns left of the table are not part of it):
    the header as written, the key in `SourceRow.raw`, the field it gives."""

    start: int
    headers: tuple[str, ...]
    keys: tuple[str, ...]
    targets: tuple[str | None, ...]
    header_map: HeaderMap
    # (sheet column, raw key, field, header for messages) per column: what `_build_row` walks.
    plan: tuple[tuple[int, str, str | None, str], ...]
    # Field → raw key of the column that gives it; one mapping shared by every row of the sheet.
    columns: Mapping[str, str]

    @property
    def end(self) -> int:
        """One past the last column of the table."""
        return self.start + len(self.headers)


def _raw_keys(start: int, headers: Sequence[str]) -> tuple[str, ...]:
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


def _header_texts(cells: Sequence[str]) -> tuple[int, list[str]]:
    """(first column, headers) of a header row; unnamed columns at either end are not part of
    the table (there is nothing to map them to), so the headers list is empty for a blank row."""
    headers = [_clean(cell) for cell in cells]
    if headers:
        # A UTF-8 BOM read as Windows-1252 (a file mixing both) shows up as "ï»¿".
        headers[0] = headers[0].lstrip("\ufeff").removeprefix("\u00ef\u00bb\u00bf").strip()
    named = [index for index, header in enumerate(headers) if header]
    if not named:
        return 0, []
    return named[0], headers[named[0] : named[-1] + 1]


def _layout(start: int, headers: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> _Layout:
    header_map = match_headers(headers, aliases)
    seen: set[str] = set()
    targets: list[str | None] = []
    for header in headers:
        # Only the first column of a repeated header is mapped; later ones are conflicts.
        targets.append(None if header in seen else header_map.columns.get(header))
        seen.add(header)
    keys = _raw_keys(start, headers)
    plan = tuple(
        (start + i, key, target, header or key)
        for i, (key, target, header) in enumerate(zip(keys, targets, headers, strict=True))
    )
    columns = MappingProxyType({t: k for k, t in zip(keys, targets, strict=True) if t is not None})
    return _Layout(start, tuple(headers), keys, tuple(targets), header_map, plan, columns)


def _shown(headers: Sequence[str]) -> str:
    named = [repr(h) for h in headers if h]
    if not named:
        return "none"
    more = f" … and {len(named) - _SHOWN_HEADERS} more" if len(named) > _SHOWN_HEADERS else ""
    return ", ".join(named[:_SHOWN_HEADERS]) + more


_MAP_HINT = "rename the columns, or map your headers under `columns:` in the config"


def _missing_message(layout: _Layout) -> str | None:
    missing = missing_required(layout.header_map)
    if not missing:
        return None
    return (
        f"missing required columns: needs {' and '.join(missing)}; "
        f"found headers: {_shown(layout.headers)} ({_MAP_HINT})"
    )


@dataclass(frozen=True)
class _Skip:
    """Why a sheet is not read as a table: `reason` for the log, `found` for the summary error."""

    reason: str
    found: str


def _conflict_message(layout: _Layout) -> str | None:
    if not layout.header_map.conflicts:
        return None
    c = layout.header_map.conflicts[0]
    return (
        f"columns {c.first!r} (column {column_letter(layout.start + c.first_index)}) and {c.second!r} "
        f"(column {column_letter(layout.start + c.second_index)}) both give {c.field}; "
        "delete or rename one of them"
    )


@dataclass
class _Tally:
    """Counts for one file. Blank rows count only once a data row follows them: trailing
    blank rows are usually leftover formatting, not rows a person skipped."""

    rows: int = 0
    blank: int = 0
    pending_blank: int = 0


def _cell_error(header: str, text: str, lost_digits: bool) -> str | None:
    if lost_digits:
        return (
            f"column {header!r}: {text} was stored by Excel as a number, and Excel keeps only "
            "15 digits of a number, so digits beyond the 15th are lost; format the column as "
            "Text and re-enter the value"
        )
    if text[0] == "#" and text in ERROR_LITERALS:
        return (
            f"column {header!r}: the formula in this cell failed and shows {text}; fix the "
            "formula in the spreadsheet, or type the value in"
        )
    return None


def _build_row(
    layout: _Layout,
    cells: Sequence[object],
    lost_digits: frozenset[int],
    error_cells: Mapping[int, str],
) -> tuple[dict[str, str], dict[str, str], tuple[str, ...]] | None:
    """raw, fields and cell errors for one row; None for a blank row.

    `cells`, `lost_digits` and `error_cells` use sheet column indexes (0 = column A).
    This runs once per row of every file, so it is kept flat.
    """
    raw: dict[str, str] = {}
    fields: dict[str, str] = {}
    errors: list[str] = []
    blank = True
    available = len(cells)
    for column, key, target, header in layout.plan:
        cell = cells[column] if column < available else ""
        if isinstance(cell, str):
            text = cell.strip()
            if text[:1] == "'":
                text = unneutralize(text)
        else:
            text = ""
        if error_cells and column in error_cells:
            text = error_cells[column]
        raw[key] = text
        if not text:
            continue
        blank = False
        if target is None:
            continue  # problems in columns we ignore must not fail the row
        fields[target] = text
        problem = _cell_error(header, text, column in lost_digits)
        if problem:
            errors.append(problem)
    if blank:
        return None
    return raw, fields, tuple(errors)


# ----------------------------------------------------------------------------------------------
# Text files: encoding, delimiter
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TextFacts:
    encoding: str
    delimiter: str
    sha256: str
    sep_line: bool = False  # Excel's "sep=;" first line: names the delimiter, Excel does not show it


_SEP_LINE = re.compile(r"sep=([^\r\n])\r?\n")


def _inspect_text(path: str) -> _TextFacts:
    """One streaming pass: hash, encoding check over the whole file, delimiter from the start.

    The whole file is decode-checked before parsing so that a stray Windows-1252 byte deep in
    a big file switches the encoding before any row is yielded.
    """
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        block = fh.read(_BLOCK)
        for magic, what in _MAGIC:
            if block.startswith(magic):
                raise SourceError(path, f"is {what}; give it its real extension, or export it as 'CSV UTF-8'")
        utf16 = block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        decoder = codecs.getincrementaldecoder("utf-16" if utf16 else "utf-8-sig")()
        decodes, has_nul, cp1252_bad = True, False, False
        sample: str | None = None
        utf8_bom = block.startswith(codecs.BOM_UTF8)
        while block:
            sha.update(block)
            if decodes:
                try:
                    text = decoder.decode(block)
                except UnicodeDecodeError:
                    decodes = False
                else:
                    sample = text if sample is None else sample
                    has_nul = has_nul or (utf16 and "\x00" in text)
            if not utf16:
                has_nul = has_nul or b"\x00" in block
                cp1252_bad = cp1252_bad or _UNDEFINED_CP1252.search(block) is not None
                if sample is None:
                    sample = block.decode("cp1252", errors="replace")
            block = fh.read(_BLOCK)
    if decodes:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            decodes = False
    if has_nul or (utf16 and not decodes) or (not decodes and cp1252_bad):
        raise SourceError(path, _NOT_TEXT)
    if utf16:
        encoding = "utf-16"
    elif decodes:
        encoding = "utf-8-sig" if utf8_bom else "utf-8"
    else:
        encoding = "cp1252"
    sep_line = _SEP_LINE.match(sample or "")
    if sep_line:
        return _TextFacts(encoding, sep_line.group(1), sha.hexdigest(), sep_line=True)
    return _TextFacts(encoding, _sniff_delimiter(path, sample or ""), sha.hexdigest())


def _records(sample: str, delimiter: str) -> list[list[str]]:
    """The non-blank records of the sample as `delimiter` would split them (a cut-off last one dropped)."""
    try:
        records = list(itertools.islice(csv.reader(io.StringIO(sample), delimiter=delimiter), _SNIFF_RECORDS))
    except csv.Error:
        return []
    if len(sample) >= _SNIFF_CHARS and len(records) > 1:
        records.pop()
    return [record for record in records if any(cell.strip() for cell in record)]


def _sniff_delimiter(path: str, sample: str) -> str:
    """The delimiter that splits the start of the file into the most consistent table.

    Like csv.Sniffer, but predictable: for each candidate, the header row's width and how many
    of the following records have exactly that width. A real delimiter gives the header more
    than one column and the rows the same count; decimal commas, free text or a stray `|` in
    a header name do not. Ties go to the wider header, then to the order `,` `;` tab `|`.
    """
    sample = sample[:_SNIFF_CHARS]
    best, best_score = ",", (False, -1, -1)
    for delimiter in _DELIMITERS:
        records = _records(sample, delimiter)
        if not records:
            continue
        width = len(records[0])
        if width > _MAX_COLUMNS:
            raise SourceError(
                path, f"the header row has more than {_MAX_COLUMNS:,} columns; is this really a table export?"
            )
        score = (width > 1, sum(1 for record in records[1:] if len(record) == width), width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


# ----------------------------------------------------------------------------------------------
# Workbooks: error cells calamine cannot report
# ----------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xlsx_sheet_part(book: zipfile.ZipFile, sheet: str) -> str | None:
    rel_ids: dict[str, str] = {}
    for element in ElementTree.fromstring(book.read("xl/workbook.xml")).iter():
        if _local(element.tag) == "sheet":
            rid = next((v for k, v in element.attrib.items() if _local(k) == "id"), None)
            if rid is not None:
                rel_ids[element.get("name", "")] = rid
    for element in ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels")).iter():
        if _local(element.tag) == "Relationship" and element.get("Id") == rel_ids.get(sheet):
            target = element.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else posixpath.normpath(f"xl/{target}")
    return None


def _cell_position(ref: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    if not match:
        return None
    column = 0
    for letter in match.group(1):
        column = column * 26 + ord(letter) - ord("A") + 1
    return int(match.group(2)) - 1, column - 1


def xlsx_error_cells(path: str, sheet: str) -> dict[tuple[int, int], str]:
    """(row, column) → error text (`#DIV/0!`) of cells whose formula failed.

    python-calamine reads error cells as empty strings (python-calamine issue #105), which
    would turn a broken formula into a silently empty id. The sheet XML says `t="e"`; it is
    scanned only when that marker occurs at all, so the common case costs one byte scan.
    Best effort: any surprise in the file's structure means "no error cells found".
    """
    found: dict[tuple[int, int], str] = {}
    try:
        with zipfile.ZipFile(path) as book:
            part = _xlsx_sheet_part(book, sheet)
            if part is None or not _member_contains(book, part, (b't="e"', b"t='e'")):
                return found
            with book.open(part) as fh:
                for _, element in ElementTree.iterparse(fh):
                    name = _local(element.tag)
                    if name == "c":
                        position = _cell_position(element.get("r", ""))
                        if element.get("t") == "e" and position is not None:
                            value = next((e.text for e in element if _local(e.tag) == "v"), None)
                            found[position] = (value or "#VALUE!").strip()
                        element.clear()
                    elif name == "row":
                        element.clear()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, ElementTree.ParseError):
        return {}
    return found


def _member_contains(book: zipfile.ZipFile, part: str, needles: tuple[bytes, ...]) -> bool:
    tail = b""
    with book.open(part) as fh:
        while block := fh.read(_BLOCK):
            window = tail + block
            if any(needle in window for needle in needles):
                return True
            tail = block[-8:]
    return False


def _sha256_file(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            sha.update(block)
    return sha.hexdigest()


def _is_spreadsheet_name(name: str) -> bool:
    # "~$Book.xlsx" and ".~lock.Book.ods#" are Excel/LibreOffice lock files, not data.
    return not name.startswith(("~$", ".")) and Path(name).suffix.lower() in EXTENSIONS


# ----------------------------------------------------------------------------------------------
# The loader
# ----------------------------------------------------------------------------------------------

_CSV_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {
        "header": None,
        "dtype": object,  # with na_filter=False every cell is a str; no type inference at all
        "keep_default_na": False,
        "na_filter": False,
        "skip_blank_lines": False,  # blank lines keep their row numbers
        "quotechar": '"',
        "engine": "c",  # no field size limit: a 10 MB cell is fine
    }
)


@dataclass
class _Progress:
    infos: list[FileInfo] = field(default_factory=list)
    blank: int = 0


class Loader:
    """Streams `SourceRow`s from files and folders, file by file, sheet by sheet, in order.

    `sheets=None` reads every visible sheet that has the required columns (others are skipped,
    recorded in `FileInfo.sheets_skipped` and logged as `input.sheet_skipped`); named sheets
    must exist and must have the required columns. CSV files ignore `sheets`.
    """

    def __init__(
        self,
        inputs: Sequence[str],
        sheets: Sequence[str] | None = None,
        aliases: Mapping[str, Sequence[str]] = _NO_ALIASES,
        chunk_rows: int = 20_000,
    ) -> None:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        try:
            check_aliases(aliases)
        except ValueError as exc:
            raise ConfigError(f"config key columns: {exc}") from exc
        self.inputs = tuple(inputs)
        self.sheets = tuple(sheets) if sheets else None
        self.aliases = aliases
        self.chunk_rows = chunk_rows
        self._progress = _Progress()

    @property
    def file_infos(self) -> list[FileInfo]:
        """One entry per file fully read so far, in reading order."""
        return list(self._progress.infos)

    @property
    def rows_skipped_blank(self) -> int:
        return self._progress.blank

    def files(self) -> list[str]:
        """The input files in reading order; a folder contributes its spreadsheets, sorted by name."""
        found: list[str] = []
        seen: set[str] = set()
        for given in self.inputs:
            path = Path(given)
            if path.is_dir():
                names = sorted(
                    (p.name for p in path.iterdir() if p.is_file() and _is_spreadsheet_name(p.name)),
                    key=lambda n: (n.casefold(), n),
                )
                if not names:
                    raise SourceError(
                        given,
                        "is a folder without spreadsheet files (.csv .tsv .txt .xlsx .xlsm .xls .ods); "
                        "check the folder",
                    )
                # os.path.join keeps the folder exactly as typed ("./in/"), which pathlib would not.
                candidates = [os.path.join(given, name) for name in names]  # noqa: PTH118
            elif path.is_file():
                if path.suffix.lower() not in EXTENSIONS:
                    raise SourceError(
                        given,
                        f"is not a file type the importer reads ({path.suffix or 'no extension'}); "
                        "save it as .csv, .xlsx, .xls or .ods",
                    )
                candidates = [given]
            elif path.exists():
                raise SourceError(given, "is neither a regular file nor a folder")
            else:
                raise SourceError(
                    given,
                    f"does not exist; check the spelling, and that the path is relative to {Path.cwd()}",
                )
            for candidate in candidates:
                real = str(Path(candidate).resolve())
                if real not in seen:  # the same file given twice is read once
                    seen.add(real)
                    found.append(candidate)
        return found

    def __iter__(self) -> Iterator[SourceRow]:
        return self.rows()

    def rows(self) -> Iterator[SourceRow]:
        """Stream every non-blank data row. Statistics restart with each call."""
        paths = self.files()
        self._progress = _Progress()
        for path in paths:
            try:
                size = Path(path).stat().st_size
            except OSError as exc:
                raise SourceError(path, f"cannot be read: {exc.strerror or exc}") from exc
            if size == 0:
                raise SourceError(path, "is empty (0 bytes); export it again with a header row")
            file_format = EXTENSIONS[Path(path).suffix.lower()]
            try:
                if file_format is FileFormat.CSV:
                    yield from self._read_text(path)
                else:
                    yield from self._read_workbook(path, file_format)
            except OSError as exc:
                raise SourceError(path, f"cannot be read: {exc.strerror or exc}") from exc

    # -- shared ------------------------------------------------------------------------------

    def _emit(
        self,
        path: str,
        sheet: str,
        layout: _Layout,
        tally: _Tally,
        number: int,
        cells: Sequence[object],
        lost_digits: frozenset[int] = frozenset(),
        error_cells: Mapping[int, str] = MappingProxyType({}),
    ) -> SourceRow | None:
        built = _build_row(layout, cells, lost_digits, error_cells)
        if built is None:
            tally.pending_blank += 1
            return None
        tally.blank += tally.pending_blank
        tally.pending_blank = 0
        tally.rows += 1
        raw, fields, errors = built
        return SourceRow(path, sheet, number, raw, fields, errors, layout.columns)

    def _finish(self, info: FileInfo) -> None:
        self._progress.infos.append(info)
        self._progress.blank += info.blank_rows
        _log.info(
            "input.file_read",
            file=info.path,
            format=str(info.format),
            rows=info.rows,
            blank_rows=info.blank_rows,
            sheets=list(info.sheets),
            sheets_skipped=list(info.sheets_skipped),
            encoding=info.encoding,
            delimiter=info.delimiter,
        )

    def _log_unknown(self, path: str, sheet: str, layout: _Layout) -> None:
        unknown = layout.header_map.unknown
        if unknown:
            _log.info(
                "input.unknown_columns",
                file=path,
                sheet=sheet,
                columns=list(unknown[:_SHOWN_HEADERS]),
                count=len(unknown),
            )

    # -- CSV ---------------------------------------------------------------------------------

    def _read_text(self, path: str) -> Iterator[SourceRow]:
        facts = _inspect_text(path)
        options = {**_CSV_OPTIONS, "sep": facts.delimiter, "encoding": facts.encoding}
        header_index, layout = self._text_header(path, options, first=1 if facts.sep_line else 0)
        problem = _missing_message(layout) or _conflict_message(layout)
        if problem:
            raise SourceError(path, problem)
        self._log_unknown(path, "", layout)
        tally = _Tally()
        width = layout.end
        # 1-based header row + 1; Excel hides a "sep=" line, so its rows start one higher.
        first_number = header_index + 2 - (1 if facts.sep_line else 0)
        # names+usecols of the header's width: short rows are padded, extra cells (no header
        # above them, nothing to map them to) are dropped instead of failing the parse.
        reader = pd.read_csv(
            path,
            **options,
            skiprows=header_index + 1,
            names=list(range(width)),
            usecols=list(range(width)),
            chunksize=self.chunk_rows,
        )
        with reader:
            for start, rows in _chunks(path, reader):
                for offset, cells in enumerate(rows):
                    row = self._emit(path, "", layout, tally, first_number + start + offset, cells)
                    if row is not None:
                        yield row
        self._finish(
            FileInfo(
                path,
                facts.sha256,
                FileFormat.CSV,
                encoding=facts.encoding,
                delimiter=facts.delimiter,
                rows=tally.rows,
                blank_rows=tally.blank,
            )
        )

    def _text_header(self, path: str, options: Mapping[str, Any], first: int) -> tuple[int, _Layout]:
        """The first non-blank record from `first` on is the header; returns its 0-based record index."""
        for index in range(first, first + _MAX_LEADING_BLANK):
            try:
                frame = pd.read_csv(path, **options, nrows=1, skiprows=index)
            except pd.errors.EmptyDataError:
                continue  # pandas says this for an empty line as much as for the end of the file
            except (pd.errors.ParserError, ValueError) as exc:
                raise SourceError(path, _parser_message(exc)) from exc
            if frame.empty:
                break
            if frame.shape[1] > _MAX_COLUMNS:
                # The sniffer only sees the file's first 64 KiB; a longer header row is counted here.
                raise SourceError(
                    path,
                    f"the header row has more than {_MAX_COLUMNS:,} columns; is this really a table export?",
                )
            start, headers = _header_texts([c if isinstance(c, str) else "" for c in frame.iloc[0].tolist()])
            if headers:
                return index, _layout(start, headers, self.aliases)
        raise SourceError(
            path,
            "has no header row (only empty rows at its start); put the column names in row 1",
        )

    # -- workbooks ---------------------------------------------------------------------------

    def _read_workbook(self, path: str, file_format: FileFormat) -> Iterator[SourceRow]:
        sha256 = _sha256_file(path)
        try:
            workbook = pd.ExcelFile(path, engine="calamine")
        except Exception as exc:  # calamine raises its own types for every kind of bad file
            raise SourceError(path, _workbook_message(exc)) from exc
        with workbook:
            chosen, skipped = self._choose_sheets(path, workbook.book)
            read: list[str] = []
            seen_headers: list[str] = []
            tally = _Tally()
            for sheet in chosen:
                layout_rows = self._sheet_layout(path, workbook, sheet)
                if isinstance(layout_rows, _Skip):
                    if self.sheets is not None:
                        raise SourceError(path, f"sheet {sheet!r}: {layout_rows.reason}")
                    skipped.append(sheet)
                    seen_headers.append(f"sheet {sheet!r} {layout_rows.found}")
                    _log.warning("input.sheet_skipped", file=path, sheet=sheet, reason=layout_rows.reason)
                    continue
                header_index, layout, rows = layout_rows
                self._log_unknown(path, sheet, layout)
                read.append(sheet)
                errors = xlsx_error_cells(path, sheet) if file_format is FileFormat.XLSX else {}
                yield from self._sheet_rows(path, sheet, layout, tally, header_index, rows, errors)
                tally.pending_blank = 0  # blank rows at the end of a sheet are not "skipped"
            if not read:
                raise SourceError(
                    path,
                    f"no sheet has the required columns: needs {REQUIREMENTS}; found "
                    f"{'; '.join(seen_headers) or 'no worksheets'} ({_MAP_HINT})",
                )
        self._finish(
            FileInfo(
                path,
                sha256,
                file_format,
                sheets=tuple(read),
                sheets_skipped=tuple(skipped),
                rows=tally.rows,
                blank_rows=tally.blank,
            )
        )

    def _choose_sheets(self, path: str, book: Any) -> tuple[list[str], list[str]]:
        """Sheets to read, and hidden sheets skipped (a person does not see them)."""
        metas = [m for m in book.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]
        names = [m.name for m in metas]
        if self.sheets is None:
            hidden = [m.name for m in metas if m.visible != SheetVisibleEnum.Visible]
            for name in hidden:
                _log.warning("input.sheet_skipped", file=path, sheet=name, reason="the sheet is hidden")
            return [n for n in names if n not in hidden], hidden
        chosen: list[str] = []
        for wanted in self.sheets:
            exact = wanted if wanted in names else None
            loose = [n for n in names if n.strip().casefold() == wanted.strip().casefold()]
            name = exact or (loose[0] if len(loose) == 1 else None)
            if name is None:
                raise SourceError(
                    path, f"has no sheet named {wanted!r}; its sheets are: {', '.join(map(repr, names))}"
                )
            if name not in chosen:  # "--sheet A --sheet A" reads A once
                chosen.append(name)
        return chosen, []

    def _sheet_layout(
        self, path: str, workbook: pd.ExcelFile, sheet: str
    ) -> tuple[int, _Layout, list[list[object]]] | _Skip:
        """(header row index, layout, all rows) — or why the sheet cannot be read as a table."""
        try:
            frame = pd.read_excel(
                workbook, sheet_name=sheet, header=None, dtype=object, na_filter=False, keep_default_na=False
            )
        except Exception as exc:  # a damaged sheet inside an otherwise readable workbook
            raise SourceError(path, f"sheet {sheet!r} cannot be read: {exc}") from exc
        rows: list[list[object]] = frame.to_numpy(dtype=object).tolist()
        for index, cells in enumerate(rows):
            start, headers = _header_texts([excel_cell_text(c)[0] for c in cells])
            if headers:
                layout = _layout(start, headers, self.aliases)
                missing = _missing_message(layout)
                if missing:
                    return _Skip(missing, f"with headers {_shown(layout.headers)}")
                conflict = _conflict_message(layout)
                if conflict:
                    raise SourceError(path, f"sheet {sheet!r}: {conflict}")
                return index, layout, rows
        return _Skip("the sheet is empty", "(empty)")

    def _sheet_rows(
        self,
        path: str,
        sheet: str,
        layout: _Layout,
        tally: _Tally,
        header_index: int,
        rows: list[list[object]],
        errors: Mapping[tuple[int, int], str],
    ) -> Iterator[SourceRow]:
        width = layout.end
        by_row: dict[int, dict[int, str]] = {}
        for (row_index, column), text in errors.items():
            by_row.setdefault(row_index, {})[column] = text
        for index in range(header_index + 1, len(rows)):
            texts: list[object] = []
            lost: set[int] = set()
            for column, value in enumerate(rows[index][:width]):
                text, lost_digits = excel_cell_text(value)
                texts.append(text)
                if lost_digits:
                    lost.add(column)
            row = self._emit(
                path, sheet, layout, tally, index + 1, texts, frozenset(lost), by_row.get(index, {})
            )
            if row is not None:
                yield row


def _chunks(path: str, reader: Any) -> Iterator[tuple[int, list[list[object]]]]:
    """(index of the chunk's first record, its rows), turning parser failures into SourceError."""
    while True:
        try:
            chunk = next(reader)
        except StopIteration:
            return
        except pd.errors.EmptyDataError:
            return
        except (pd.errors.ParserError, ValueError) as exc:
            raise SourceError(path, _parser_message(exc)) from exc
        start = int(chunk.index[0]) if len(chunk.index) else 0
        yield start, chunk.to_numpy(dtype=object).tolist()


def _parser_message(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"EOF inside string starting at row (\d+)", text)
    if match:
        return (
            f'has a quote (") that is never closed, starting in row {int(match.group(1)) + 1}; '
            "check that cell's quotes, or export the file again"
        )
    return f"cannot be read as CSV: {text.strip()}; export it again as 'CSV UTF-8'"


def _workbook_message(exc: Exception) -> str:
    if type(exc).__name__ == "PasswordError":
        return "is password-protected; remove the password in Excel and save it again"
    reason = str(exc).strip() or type(exc).__name__
    return f"is not a valid Excel workbook: {reason}; open it in Excel and save it as .xlsx"
