"""What calamine does not tell about an .xlsx sheet, read from the workbook's XML parts.

* error cells (`t="e"`): calamine reads them as empty strings (python-calamine issue #105);
* number formats that decide the digits (`00000`, `0.00`): calamine gives the bare number;
* hidden rows (`<row hidden="1">`), filtered-out rows included.

Cheap by design: styles.xml is tiny; the sheet XML is scanned with byte regexes only when the
workbook has a digit-deciding style or the sheet mentions `hidden` / `t="e"` at all, and a scan
looks only at the cells carrying such a style. Best effort: any surprise in the file's
structure means "nothing found", and the cell reads as calamine gives it.
"""

from __future__ import annotations

import io
import posixpath
import re
import zipfile
from dataclasses import dataclass, field
from xml.etree import ElementTree

from importer.loader.cells import BUILTIN_FORMATS, NumberFormat, number_format

_READ_ERRORS = (OSError, KeyError, ValueError, zipfile.BadZipFile, ElementTree.ParseError)
_ROW = re.compile(rb"<row\b([^>]*)>")
_ROW_NUMBER = re.compile(rb'\br="(\d+)"')
_HIDDEN = re.compile(rb'\bhidden="(?:1|true)"')


@dataclass
class SheetFacts:
    """(row, column) → error text; row → column → number format (by row: one look-up per row
    on the hot path); (row, column) → the displayed text itself (.ods); hidden row indexes.
    Indexes are 0-based."""

    errors: dict[tuple[int, int], str] = field(default_factory=dict)
    formats: dict[int, dict[int, NumberFormat]] = field(default_factory=dict)
    texts: dict[tuple[int, int], str] = field(default_factory=dict)
    hidden_rows: set[int] = field(default_factory=set)


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


def cell_position(ref: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"([A-Z]+)(\d+)", ref)
    if not match:
        return None
    column = 0
    for letter in match.group(1):
        column = column * 26 + ord(letter) - ord("A") + 1
    return int(match.group(2)) - 1, column - 1


def digit_styles(book: zipfile.ZipFile) -> dict[int, NumberFormat]:
    """Cell style index (the `s` attribute) → its digit-deciding number format."""
    try:
        root = ElementTree.fromstring(book.read("xl/styles.xml"))
    except _READ_ERRORS:
        return {}
    codes: dict[int, str] = dict(BUILTIN_FORMATS)
    for element in root.iter():
        if _local(element.tag) == "numFmt" and (element.get("numFmtId") or "").isdigit():
            codes[int(element.get("numFmtId", "0"))] = element.get("formatCode", "")
    styles: dict[int, NumberFormat] = {}
    for part in root:
        if _local(part.tag) != "cellXfs":
            continue
        for index, xf in enumerate(x for x in part if _local(x.tag) == "xf"):
            code = codes.get(int(xf.get("numFmtId") or 0))
            found = number_format(code) if code else None
            if found is not None:
                styles[index] = found
    return styles


def _styled_cells(data: bytes, styles: dict[int, NumberFormat]) -> dict[int, dict[int, NumberFormat]]:
    # Excel, LibreOffice and xlsxwriter all write `<c r=".." s=".."`; only cells with a
    # digit-deciding style are matched, so an unformatted sheet costs one regex pass.
    wanted = b"|".join(str(s).encode() for s in sorted(styles))
    pattern = re.compile(rb'<c r="([A-Z]{1,3})(\d+)" s="(' + wanted + rb')"')
    columns: dict[bytes, int] = {}  # a sheet has few distinct columns; each is computed once
    found: dict[int, dict[int, NumberFormat]] = {}
    for letters, row, style in pattern.findall(data):
        column = columns.get(letters)
        if column is None:
            column = columns[letters] = _column_index(letters.decode())
        index = int(row) - 1
        cells = found.get(index)
        if cells is None:
            cells = found[index] = {}
        cells[column] = styles[int(style)]
    return found


def _column_index(letters: str) -> int:
    column = 0
    for letter in letters:
        column = column * 26 + ord(letter) - ord("A") + 1
    return column - 1


def _hidden_rows(data: bytes) -> set[int]:
    hidden: set[int] = set()
    for match in _ROW.finditer(data):
        attributes = match.group(1)
        if _HIDDEN.search(attributes):
            number = _ROW_NUMBER.search(attributes)
            if number:
                hidden.add(int(number.group(1)) - 1)
    return hidden


def sheet_facts(path: str, sheet: str) -> SheetFacts:
    """Everything above for one sheet, in one read of its XML part."""
    facts = SheetFacts()
    try:
        with zipfile.ZipFile(path) as book:
            part = _xlsx_sheet_part(book, sheet)
            if part is None:
                return facts
            styles = digit_styles(book)
            data = book.read(part)
    except _READ_ERRORS:
        return facts
    if styles:
        facts.formats = _styled_cells(data, styles)
    if b"hidden=" in data:
        facts.hidden_rows = _hidden_rows(data)
    if b't="e"' in data or b"t='e'" in data:
        facts.errors = _error_cells(data)
    return facts


def _error_cells(data: bytes) -> dict[tuple[int, int], str]:
    """(row, column) → error text (`#DIV/0!`) of cells whose formula failed."""
    found: dict[tuple[int, int], str] = {}
    try:
        for _, element in ElementTree.iterparse(io.BytesIO(data)):
            name = _local(element.tag)
            if name == "c":
                position = cell_position(element.get("r", ""))
                if element.get("t") == "e" and position is not None:
                    value = next((e.text for e in element if _local(e.tag) == "v"), None)
                    found[position] = (value or "#VALUE!").strip()
                element.clear()
            elif name == "row":
                element.clear()
    except ElementTree.ParseError:
        return {}
    return found
