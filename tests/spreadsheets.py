"""Builders for the loader tests: input files written exactly as each test needs them.

xlsxwriter lets a test say what Excel stored (a string, a number, a boolean, a date, a formula
with its cached result), which is the whole point of the Excel tests.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from xml.sax.saxutils import escape

import xlsxwriter

from importer.loader import Loader
from importer.models import SourceRow

# The smallest header set that passes the required-columns check.
HEADER = ["Customer ID", "Payment Source Type", "Payment Source ID"]


@dataclass(frozen=True)
class Formula:
    """A formula cell with the result Excel would have cached for it."""

    formula: str
    value: object = None


Cell = str | int | float | bool | date | datetime | Formula | None


def write_bytes(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def write_text(path: Path, text: str, encoding: str = "utf-8") -> str:
    """Text as given (newlines included), in the given encoding (utf-8-sig / utf-16 add a BOM)."""
    path.write_bytes(text.encode(encoding))
    return str(path)


def csv_text(rows: Iterable[Sequence[str]], delimiter: str = ",") -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerows(rows)
    return out.getvalue()


def write_csv(
    path: Path, rows: Iterable[Sequence[str]], delimiter: str = ",", encoding: str = "utf-8"
) -> str:
    return write_text(path, csv_text(rows, delimiter), encoding)


def write_xlsx(path: Path, sheets: Mapping[str, Sequence[Sequence[Cell]]], hidden: Sequence[str] = ()) -> str:
    """One worksheet per entry; None leaves the cell empty."""
    book = xlsxwriter.Workbook(str(path))
    date_format = book.add_format({"num_format": "yyyy-mm-dd"})
    time_format = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        if name in hidden:
            sheet.hide()
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                _write_cell(sheet, r, c, value, date_format, time_format)
    book.close()
    return str(path)


def _write_cell(sheet: object, r: int, c: int, value: Cell, date_format: object, time_format: object) -> None:
    ws = sheet  # xlsxwriter has no type hints; keep the calls explicit
    if value is None:
        return
    if isinstance(value, Formula):
        ws.write_formula(r, c, value.formula, None, value.value)  # type: ignore[attr-defined]
    elif isinstance(value, bool):
        ws.write_boolean(r, c, value)  # type: ignore[attr-defined]
    elif isinstance(value, int | float):
        ws.write_number(r, c, value)  # type: ignore[attr-defined]
    elif isinstance(value, datetime):
        fmt = date_format if value == datetime(value.year, value.month, value.day) else time_format
        ws.write_datetime(r, c, value, fmt)  # type: ignore[attr-defined]
    elif isinstance(value, date):
        ws.write_datetime(r, c, datetime(value.year, value.month, value.day), date_format)  # type: ignore[attr-defined]
    else:
        ws.write_string(r, c, value)  # type: ignore[attr-defined]


def _ods_cell(value: str | float) -> str:
    if isinstance(value, str):
        kind, shown = 'office:value-type="string"', escape(value)
    else:
        kind, shown = f'office:value-type="float" office:value="{value!r}"', str(value)
    return f"<table:table-cell {kind}><text:p>{shown}</text:p></table:table-cell>"


def write_ods(path: Path, sheets: Mapping[str, Sequence[Sequence[str | float]]]) -> str:
    """A minimal OpenDocument spreadsheet, written by hand (no ODS writer is installed)."""
    tables = "".join(
        f'<table:table table:name="{escape(name)}">'
        + "".join("<table:table-row>" + "".join(map(_ods_cell, row)) + "</table:table-row>" for row in rows)
        + "</table:table>"
        for name, rows in sheets.items()
    )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        f"<office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2">'
        '<manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", manifest, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, compress_type=zipfile.ZIP_DEFLATED)
    return str(path)


def load(*inputs: str, **options: object) -> list[SourceRow]:
    return list(Loader(list(inputs), **options))  # type: ignore[arg-type]


def load_with(*inputs: str, **options: object) -> tuple[list[SourceRow], Loader]:
    loader = Loader(list(inputs), **options)  # type: ignore[arg-type]
    return list(loader), loader
