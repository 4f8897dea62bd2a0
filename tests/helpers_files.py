"""Small builders for the tests that own them: source rows, input files, journals, reading reports."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from spreadsheets import csv_text, write_text

from importer.journal import Journal
from importer.models import SourceRow

HEADER = ("customer_id", "customer_email", "payment_source_type", "payment_source_id", "reference")


def cid(n: int) -> str:
    """A valid 10-character id, distinct per n."""
    return f"CUST{n:06d}"


def psid(n: int) -> str:
    return f"PSRC{n:06d}"


def source_row(
    n: int,
    *,
    customer: int | None = None,
    email: str = "",
    source: int | None = None,
    source_type: str = "stripe_payments",
    file: str = "in.csv",
    sheet: str = "",
    row_number: int | None = None,
    reference: str = "",
    extra: Mapping[str, str] | None = None,
) -> SourceRow:
    """A row as the loader yields it: canonical headers, so raw and fields agree."""
    fields = {
        "customer_id": cid(customer if customer is not None else n) if not email else "",
        "customer_email": email,
        "payment_source_type": source_type,
        "payment_source_id": psid(source if source is not None else n),
        "reference": reference,
    }
    fields = {k: v for k, v in fields.items() if v}
    raw = {h: fields.get(h, "") for h in HEADER} | dict(extra or {})
    return SourceRow(source_file=file, sheet=sheet, row_number=row_number or n + 2, raw=raw, fields=fields)


def write_csv(
    path: Path, header: Sequence[str], rows: Iterable[Sequence[str]], encoding: str = "utf-8"
) -> Path:
    """A header and its rows. The bytes come from spreadsheets.csv_text, the one CSV writer of the
    tests (the loader tests use its grid form, `spreadsheets.write_csv`, to put a header anywhere)."""
    write_text(path, csv_text([header, *rows]), encoding)
    return path


def write_xlsx(path: Path, sheets: Mapping[str, Sequence[Sequence[Any]]]) -> Path:
    """A workbook whose cells are all text (as finance teams should store ids)."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                sheet.write_string(r, c, str(value))
    book.close()
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    """A report CSV as dicts (utf-8-sig drops the BOM)."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def read_csv_rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.reader(fh))


def journal_with_rows(path: Path | str, run_id: str, rows: Sequence[SourceRow]) -> Journal:
    """A journal with one run whose rows went through intake (validator included)."""
    from importer.intake import intake
    from importer.validator import Defaults

    journal = Journal.open(path)
    journal.start_run(run_id, command="run", target="https://acme.commercelayer.io", inputs_fingerprint="fp")
    intake(rows, journal, run_id, Defaults())
    return journal


# -- reading results.xlsx back without openpyxl (not a dependency of the project) -------------------
_NS = {
    "m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "rel": "http://schemas.openxmlformats.org/package/2006/relationships",
}


def xlsx_values(path: Path, sheet: str) -> list[list[Any]]:
    """Cell values as calamine reads them: text as str, numbers as float, empty as ""."""
    from python_calamine import CalamineWorkbook

    book = CalamineWorkbook.from_path(str(path))
    return [list(row) for row in book.get_sheet_by_name(sheet).to_python()]


def xlsx_sheet_names(path: Path) -> list[str]:
    from python_calamine import CalamineWorkbook

    return list(CalamineWorkbook.from_path(str(path)).sheet_names)


def xlsx_sheet_xml(path: Path, sheet: str) -> Any:
    """The worksheet's XML root, found through workbook.xml and its relationships."""
    import posixpath
    import zipfile
    from xml.etree import ElementTree

    with zipfile.ZipFile(path) as book:
        workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
        rel_id = next(
            s.get(f"{{{_NS['r']}}}id")
            for s in workbook.iterfind("m:sheets/m:sheet", _NS)
            if s.get("name") == sheet
        )
        target = next(
            r.get("Target") for r in rels.iterfind("rel:Relationship", _NS) if r.get("Id") == rel_id
        )
        return ElementTree.fromstring(book.read(posixpath.join("xl", str(target))))


def xlsx_frozen_at(path: Path, sheet: str) -> str | None:
    """The first scrolling cell of a frozen pane ("A2" = the header row is frozen)."""
    pane = xlsx_sheet_xml(path, sheet).find("m:sheetViews/m:sheetView/m:pane", _NS)
    return None if pane is None or pane.get("state") != "frozen" else pane.get("topLeftCell")


def xlsx_autofilter(path: Path, sheet: str) -> str | None:
    node = xlsx_sheet_xml(path, sheet).find("m:autoFilter", _NS)
    return None if node is None else node.get("ref")


def xlsx_cell_kinds(path: Path, sheet: str) -> dict[str, str]:
    """Cell reference → "n" (number), "s" (text) or "f" (has a formula)."""
    kinds: dict[str, str] = {}
    for cell in xlsx_sheet_xml(path, sheet).iterfind("m:sheetData/m:row/m:c", _NS):
        has_formula = cell.find("m:f", _NS) is not None
        kinds[str(cell.get("r"))] = "f" if has_formula else "n" if cell.get("t") in (None, "n") else "s"
    return kinds


def error_message(err: str) -> str:
    """The one error a command reported on stderr, as `importer: error: <message>`: in JSON mode
    the `run.error` event (stderr then holds nothing but JSON lines), else the plain line."""
    import json

    for line in err.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == "run.error":
                return f"importer: error: {event['error']}"
        elif line.startswith("importer: error:"):
            return line
    raise AssertionError(f"no error reported on stderr: {err[-2000:]!r}")
