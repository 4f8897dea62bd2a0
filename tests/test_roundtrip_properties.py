"""Property: any table of text cells we write (neutralized, as report.py does) reads back identical.

The tables carry the report's own columns (source_*, error_*), because only an importer report
gets its neutralization undone on reading; a raw sheet keeps a leading apostrophe as typed.

Cells are strip-stable because the loader trims; all-blank rows are allowed and must be
skipped without shifting the row numbers of the others.
"""

from __future__ import annotations

import csv
import tempfile
from pathlib import Path

import xlsxwriter
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from importer.headers import match_headers
from importer.loader import Loader
from importer.neutralize import neutralize

REQUIRED = ["customer_id", "payment_source_token"]
SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Printable text of every kind, plus the characters that break naive CSV handling.
_chars = st.one_of(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufeff"),
    st.sampled_from(list("=+-@;,|\"'\n\r\t0#")),
    st.characters(min_codepoint=1, max_codepoint=31),  # control characters, NUL excluded
)
cell = st.text(_chars, max_size=12).map(str.strip)
leading_zeros = st.integers(0, 10**6).map(lambda n: f"000{n}")
value = st.one_of(cell, leading_zeros, st.just(""))


def headers_strategy() -> st.SearchStrategy[list[str]]:
    extra = st.lists(cell.filter(bool), max_size=3, unique=True)
    return extra.map(lambda names: REQUIRED + names)


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    headers = draw(headers_strategy())
    hm = match_headers(headers)
    # Extra headers must stay "unknown" (not collide with a field) and be unique for raw.
    assume(set(hm.unknown) == set(headers[len(REQUIRED) :]))
    assume(len(set(headers)) == len(headers))
    rows = draw(st.lists(st.lists(value, min_size=len(headers), max_size=len(headers)), max_size=8))
    return headers, rows


def expected(headers: list[str], rows: list[list[str]]) -> list[tuple[int, dict[str, str]]]:
    return [(i + 2, dict(zip(headers, row, strict=True))) for i, row in enumerate(rows) if any(row)]


HEAD = ["source_file", "source_sheet", "source_row"]
TAIL = ["error_code", "error_detail"]


def as_report(record: list[str]) -> list[str]:
    """A report line: empty source columns (the row's own number stands) and an error column."""
    return [*([""] * len(HEAD)), *record, "", ""]


def read_back(path: Path) -> list[tuple[int, dict[str, str]]]:
    return [(r.row_number, r.raw) for r in Loader([str(path)])]


@SETTINGS
@given(tables())
def test_csv_round_trip(table: tuple[list[str], list[list[str]]]) -> None:
    headers, rows = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            for record in [HEAD + headers + TAIL, *map(as_report, rows)]:
                writer.writerow([neutralize(c) for c in record])
        assert read_back(path) == expected(headers, rows)


@SETTINGS
@given(tables())
def test_xlsx_round_trip(table: tuple[list[str], list[list[str]]]) -> None:
    headers, rows = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.xlsx"
        book = xlsxwriter.Workbook(str(path))
        sheet = book.add_worksheet("Data")
        for r, record in enumerate([HEAD + headers + TAIL, *map(as_report, rows)]):
            for c, text in enumerate(record):
                if text:
                    sheet.write_string(r, c, neutralize(text))
        book.close()
        got = [(r.row_number, r.raw, r.sheet) for r in Loader([str(path)])]
        assert got == [(n, raw, "Data") for n, raw in expected(headers, rows)]


@SETTINGS
@given(tables(), st.sampled_from([";", "\t", "|"]))
def test_csv_round_trip_with_other_delimiters(
    table: tuple[list[str], list[list[str]]], delimiter: str
) -> None:
    headers, rows = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        with open(path, "w", encoding="utf-8-sig", newline="") as fh:
            writer = csv.writer(fh, delimiter=delimiter)
            for record in [HEAD + headers + TAIL, *map(as_report, rows)]:
                writer.writerow([neutralize(c) for c in record])
        assert read_back(path) == expected(headers, rows)
