"""Loader: files read as a person sees them. Every input file is written by the test itself."""

from __future__ import annotations

import hashlib
import os
import time
import tracemalloc
import zipfile
from datetime import date, datetime
from pathlib import Path

import pytest
from spreadsheets import (
    HEADER,
    Formula,
    csv_text,
    load,
    load_with,
    write_bytes,
    write_csv,
    write_ods,
    write_text,
    write_xlsx,
)
from structlog.testing import capture_logs

from importer.errors import ConfigError, SourceError
from importer.loader import FileFormat, Loader, column_letter, excel_cell_text
from importer.models import Pairing
from importer.validator import Defaults, validate_row

ROW = ["CUST000001", "stripe_payments", "PSRC000001"]


def values(rows: list, field: str) -> list[str]:  # type: ignore[type-arg]
    return [r.fields.get(field, "") for r in rows]


# -- encodings --------------------------------------------------------------------------------


def test_utf8_bom_does_not_survive_in_the_first_header(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bom.csv", [HEADER, ROW], encoding="utf-8-sig")
    rows, loader = load_with(path)
    assert list(rows[0].raw) == HEADER
    assert rows[0].fields["customer_id"] == "CUST000001"
    assert loader.file_infos[0].encoding == "utf-8-sig"


def test_plain_utf8(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "u.csv", [[*HEADER, "Name"], [*ROW, "Zoë 東京 €"]])
    rows, loader = load_with(path)
    assert rows[0].raw["Name"] == "Zoë 東京 €"
    assert loader.file_infos[0].encoding == "utf-8"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be"])
def test_utf16_with_bom_tab_delimited_as_excel_unicode_text(tmp_path: Path, encoding: str) -> None:
    text = csv_text([[*HEADER, "Name"], [*ROW, "Müller, Jürgen"]], delimiter="\t")
    data = ("\ufeff" + text).encode(encoding) if encoding.endswith("be") else text.encode(encoding)
    path = write_bytes(tmp_path / "unicode.txt", data)
    rows, loader = load_with(path)
    assert list(rows[0].raw) == [*HEADER, "Name"]
    assert rows[0].raw["Name"] == "Müller, Jürgen"
    info = loader.file_infos[0]
    assert (info.encoding, info.delimiter, info.format) == ("utf-16", "\t", FileFormat.CSV)


def test_windows_1252_round_trips(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "ansi.csv",
        [[*HEADER, "Name", "Amount"], [*ROW, "Müller", "€ 5"]],
        delimiter=";",
        encoding="cp1252",
    )
    rows, loader = load_with(path)
    assert (rows[0].raw["Name"], rows[0].raw["Amount"]) == ("Müller", "€ 5")
    assert loader.file_infos[0].encoding == "cp1252"


def test_a_late_windows_1252_byte_switches_the_encoding_before_any_row(tmp_path: Path) -> None:
    body = [[*HEADER, "Name"]] + [[*ROW, "plain ascii filler"] for _ in range(40_000)] + [[*ROW, "Müller"]]
    path = write_csv(tmp_path / "late.csv", body, encoding="cp1252")
    assert os.path.getsize(path) > (1 << 20)  # the odd byte sits beyond the first block
    rows, loader = load_with(path)
    assert len(rows) == 40_001
    assert rows[-1].raw["Name"] == "Müller"
    assert loader.file_infos[0].encoding == "cp1252"


def test_a_utf8_bom_on_a_windows_1252_file_does_not_reach_the_header(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "mix.csv", b"\xef\xbb\xbfCustomer ID,Card Token\r\nCUST000001,M\xfcller\r\n"
    )
    rows, loader = load_with(path)
    assert rows[0].raw == {"Customer ID": "CUST000001", "Card Token": "Müller"}
    assert loader.file_infos[0].encoding == "cp1252"


def test_bytes_that_are_neither_utf8_nor_windows_1252(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "odd.csv", ",".join(HEADER).encode() + b"\r\nCUST\x81\xff,x,y\r\n")
    with pytest.raises(
        SourceError, match=r"odd.csv: is not a CSV/text file in UTF-8, UTF-16 or Windows-1252"
    ):
        load(path)


# -- delimiters and quoting ---------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiters(tmp_path: Path, delimiter: str) -> None:
    path = write_csv(tmp_path / "d.csv", [[*HEADER, "Note"], [*ROW, "a,b;c|d\te"]], delimiter=delimiter)
    rows, loader = load_with(path)
    assert rows[0].raw == dict(zip([*HEADER, "Note"], [*ROW, "a,b;c|d\te"], strict=True))
    assert loader.file_infos[0].delimiter == delimiter


def test_delimiter_is_the_one_that_makes_a_consistent_table(tmp_path: Path) -> None:
    # A header name with pipes and commas must not fool the sniffing; the rows decide.
    path = write_text(
        tmp_path / "p.csv",
        "Customer ID;Card Token;Notes | a | b | c, d\nCUST000001;tok;x\nCUST000002;tok2;y\n",
    )
    rows, loader = load_with(path)
    assert loader.file_infos[0].delimiter == ";"
    assert list(rows[0].raw) == ["Customer ID", "Card Token", "Notes | a | b | c, d"]


def test_a_single_column_file_defaults_to_comma(tmp_path: Path) -> None:
    path = write_text(tmp_path / "one.csv", "Customer ID\nCUST000001\n")
    with pytest.raises(SourceError, match="found headers: 'Customer ID'"):
        load(path)


def test_semicolon_file_with_decimal_commas_in_the_data(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "eu.csv", "Customer ID;Card Token;Amount\nCUST000001;tok;3,50\nCUST000002;tok2;1,00\n"
    )
    rows = load(path)
    assert [r.raw["Amount"] for r in rows] == ["3,50", "1,00"]


def test_quoted_newlines_and_delimiters_stay_whole_and_count_as_one_row(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "q.csv",
        [
            [*HEADER, "Note"],
            [*ROW, 'line one\nline "two", with comma'],
            ["CUST000002", "stripe_payments", "PSRC000002", "x"],
        ],
    )
    rows = load(path)
    assert rows[0].raw["Note"] == 'line one\nline "two", with comma'
    assert [r.row_number for r in rows] == [2, 3]


def test_carriage_returns_inside_quotes_are_kept(tmp_path: Path) -> None:
    path = write_bytes(
        tmp_path / "cr.csv", b'Customer ID,Card Token,Note\r\nCUST000001,tok,"a\r\nb\rc"\r\nCUST2,t,x\r\n'
    )
    rows = load(path)
    assert rows[0].raw["Note"] == "a\r\nb\rc"
    assert [r.row_number for r in rows] == [2, 3]


def test_excels_sep_line_names_the_delimiter_and_is_not_a_row(tmp_path: Path) -> None:
    path = write_text(tmp_path / "sep.csv", "sep=;\r\nCustomer ID;Card Token\r\nCUST000001;a,b\r\n")
    rows, loader = load_with(path)
    assert [(r.row_number, r.raw) for r in rows] == [(2, {"Customer ID": "CUST000001", "Card Token": "a,b"})]
    assert loader.file_infos[0].delimiter == ";"


def test_ragged_rows_are_padded_and_extra_cells_fail_the_row(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "r.csv", "Customer ID,Card Token,Note\nCUST000001,tok\nCUST000002,tok2,n,extra,\n"
    )
    rows = load(path)
    assert rows[0].raw == {"Customer ID": "CUST000001", "Card Token": "tok", "Note": ""}
    assert rows[0].cell_errors == ()
    # The extra cell is not dropped in silence: it is kept for failures.csv, and the row fails,
    # naming it (issue 9).
    assert rows[1].raw == {
        "Customer ID": "CUST000002",
        "Card Token": "tok2",
        "Note": "n",
        "extra_values": "extra",
    }
    assert len(rows[1].cell_errors) == 1
    assert "1 more value than the header has columns: 'extra'" in rows[1].cell_errors[0]


def test_an_unclosed_quote_is_a_clear_error(tmp_path: Path) -> None:
    path = write_text(tmp_path / "uq.csv", 'Customer ID,Card Token\nCUST000001,tok\nCUST000002,"tok\n')
    with pytest.raises(SourceError, match=r"uq.csv: .*never closed, starting in row 3"):
        load(path)


# -- cells as text ----------------------------------------------------------------------------


def test_leading_zeros_and_number_like_text_stay_as_written(tmp_path: Path) -> None:
    cells = ["00123", "1.50", "1E5", "TRUE", "NA", "null", "#", "2024-01-02"]
    heads = [f"c{i}" for i in range(len(cells))]
    csv_path = write_csv(tmp_path / "z.csv", [[*HEADER, *heads], [*ROW, *cells]])
    xlsx_path = write_xlsx(tmp_path / "z.xlsx", {"S": [[*HEADER, *heads], [*ROW, *cells]]})
    for path in (csv_path, xlsx_path):
        row = load(path)[0]
        assert [row.raw[h] for h in heads] == cells


def test_values_and_headers_are_trimmed(tmp_path: Path) -> None:
    path = write_text(tmp_path / "t.csv", " Customer ID , Card Token \n  CUST000001 ,\ttok \n")
    rows = load(path)
    assert rows[0].raw == {"Customer ID": "CUST000001", "Card Token": "tok"}


def test_numbers_stored_by_excel_read_as_the_digits_a_person_sees(tmp_path: Path) -> None:
    heads = ["a", "b", "c", "d", "e", "f", "g"]
    path = write_xlsx(
        tmp_path / "n.xlsx",
        {
            "S": [
                [*HEADER, *heads],
                [*ROW, 4242.0, 3.5, 0.1 + 0.2, 1e-7, -0.0, 123456789012345, -12.25],
            ]
        },
    )
    row = load(path)[0]
    assert [row.raw[h] for h in heads] == [
        "4242",
        "3.5",
        "0.3",
        "0.0000001",
        "0",
        "123456789012345",
        "-12.25",
    ]
    assert row.cell_errors == ()


def test_a_16_digit_number_has_lost_digits(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "big.xlsx",
        {
            "S": [
                ["Customer ID", "Payment Source Type", "Payment Source ID"],
                ["CUST000001", "stripe_payments", 1234567890123456],
            ]
        },
    )
    row = load(path)[0]
    assert row.fields["payment_source_id"] == "1234567890123456"
    assert row.cell_errors == (
        "column 'Payment Source ID': 1234567890123456 was stored by Excel as a number, and Excel keeps only "
        "15 digits of a number, so digits beyond the 15th are lost; format the column as Text and re-enter "
        "the value",
    )


def test_1_2e15_reads_without_exponent_and_is_flagged(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "e15.xlsx", {"S": [[*HEADER, "Reference"], [*ROW, 1.2e15]]})
    row = load(path)[0]
    assert row.fields["reference"] == "1200000000000000"
    assert len(row.cell_errors) == 1 and "'Reference'" in row.cell_errors[0]


def test_lost_digits_in_an_ignored_column_do_not_fail_the_row(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "ign.xlsx", {"S": [[*HEADER, "Notes"], [*ROW, 1234567890123456789]]})
    row = load(path)[0]
    assert row.raw["Notes"] == "1234567890123457000"
    assert row.cell_errors == ()


def test_booleans_and_dates_in_excel(tmp_path: Path) -> None:
    heads = ["flag", "off", "day", "stamp"]
    path = write_xlsx(
        tmp_path / "bd.xlsx",
        {
            "S": [
                [*HEADER, *heads],
                [*ROW, True, False, date(2024, 1, 2), datetime(2024, 3, 4, 5, 6, 7)],
            ]
        },
    )
    row = load(path)[0]
    assert [row.raw[h] for h in heads] == ["TRUE", "FALSE", "2024-01-02", "2024-03-04 05:06:07"]


def test_excel_cell_text_directly() -> None:
    assert excel_cell_text(4242) == ("4242", False)
    assert excel_cell_text(1200000000000000) == ("1200000000000000", True)
    assert excel_cell_text(1.234567890123457e18) == ("1234567890123457000", True)
    assert excel_cell_text(float("nan")) == ("", False)
    assert excel_cell_text(None) == ("", False)
    assert excel_cell_text(True) == ("TRUE", False)
    assert excel_cell_text(datetime(2024, 1, 2)) == ("2024-01-02", False)


def test_formula_errors_become_their_text_and_a_cell_error(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "err.xlsx",
        {
            "S": [
                [*HEADER, "Reference", "Notes"],
                [
                    "CUST000001",
                    "stripe_payments",
                    Formula("=1/0", "#DIV/0!"),
                    Formula("=NA()", "#N/A"),
                    Formula("=1/0", "#DIV/0!"),
                ],
                [*ROW[:2], "PSRC000002", Formula("=1+1", 2), "ok"],
            ]
        },
    )
    rows = load(path)
    assert rows[0].fields["payment_source_id"] == "#DIV/0!"
    assert rows[0].fields["reference"] == "#N/A"
    assert rows[0].raw["Notes"] == "#DIV/0!"
    assert rows[0].cell_errors == (
        "column 'Payment Source ID': the formula in this cell failed and shows #DIV/0!; fix the "
        "formula in the spreadsheet, or type the value in",
        "column 'Reference': the formula in this cell failed and shows #N/A; fix the formula in the "
        "spreadsheet, or type the value in",
    )
    assert rows[1].fields["reference"] == "2"
    assert rows[1].cell_errors == ()


def test_excel_error_text_in_a_csv_export_is_a_cell_error(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "e.csv", [HEADER, ["CUST000001", "stripe_payments", "#REF!"]])
    assert "shows #REF!" in load(path)[0].cell_errors[0]


def test_control_characters_and_ooxml_escapes_in_excel_strings(tmp_path: Path) -> None:
    cells = ["_x0041_ stays", "a\r\nb", "ctrl\x01x"]
    heads = ["c0", "c1", "c2"]
    row = load(write_xlsx(tmp_path / "x.xlsx", {"S": [[*HEADER, *heads], [*ROW, *cells]]}))[0]
    assert [row.raw[h] for h in heads] == cells


def test_a_neutralized_formula_reads_back_as_the_original_only_in_our_own_report(tmp_path: Path) -> None:
    cells = ["'=1+1", "'+49 30 123", "'-5", "'@SUM(A1)", "''=x", "'plain"]
    heads = [f"c{i}" for i in range(len(cells))]
    report_head = ["source_file", "source_sheet", "source_row", *HEADER, *heads, "error_code", "error_detail"]
    report = write_csv(
        tmp_path / "failures.csv", [report_head, ["in.xlsx", "S", "7", *ROW, *cells, "X", "'-detail"]]
    )
    row = load(report)[0]
    assert [row.raw[h] for h in heads] == ["=1+1", "+49 30 123", "-5", "@SUM(A1)", "'=x", "'plain"]
    assert (row.source_file, row.sheet, row.row_number) == ("in.xlsx", "S", 7)
    assert "error_code" not in row.raw and "source_file" not in row.raw
    # A raw sheet keeps its apostrophes as typed (issue 9): only our reports are neutralized by us.
    for path in (
        write_csv(tmp_path / "f.csv", [[*HEADER, *heads], [*ROW, *cells]]),
        write_xlsx(tmp_path / "f.xlsx", {"S": [[*HEADER, *heads], [*ROW, *cells]]}),
    ):
        row = load(path)[0]
        assert [row.raw[h] for h in heads] == cells


# -- rows, blank rows, row numbers ----------------------------------------------------------------


def test_blank_rows_are_skipped_counted_and_keep_their_numbers(tmp_path: Path) -> None:
    text = ",".join(HEADER) + "\n" + ",".join(ROW) + "\n\n , ,\n" + "CUST000002,stripe,PSRC000002\n\n,,\n"
    path = write_text(tmp_path / "b.csv", text)
    rows, loader = load_with(path)
    assert [r.row_number for r in rows] == [2, 5]
    assert loader.rows_skipped_blank == 2  # trailing blank rows are not counted
    assert (loader.file_infos[0].rows, loader.file_infos[0].blank_rows) == (2, 2)


def test_blank_rows_in_excel(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "b.xlsx", {"S": [HEADER, ROW, [], ["", " "], ["CUST000002", "wire", "PSRC000002"]]}
    )
    rows, loader = load_with(path)
    assert [r.row_number for r in rows] == [2, 5]
    assert loader.rows_skipped_blank == 2


def test_header_below_leading_blank_rows_keeps_excel_row_numbers(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "lead.xlsx", {"S": [[], [None, None], [None, *HEADER], [None, *ROW]]})
    rows = load(path)
    assert rows[0].row_number == 4
    assert list(rows[0].raw) == HEADER


def test_csv_header_below_blank_lines(tmp_path: Path) -> None:
    path = write_text(tmp_path / "lead.csv", "\n,,\n" + ",".join(HEADER) + "\n" + ",".join(ROW) + "\n")
    rows = load(path)
    assert rows[0].row_number == 4


def test_header_only_file_has_no_rows(tmp_path: Path) -> None:
    rows, loader = load_with(write_csv(tmp_path / "h.csv", [HEADER]))
    assert rows == []
    assert loader.file_infos[0].rows == 0


def test_raw_keeps_all_columns_fields_only_filled_ones(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "f.csv", [[*HEADER, "Reference", "Notes"], [*ROW, "", ""]])
    row = load(path)[0]
    assert row.raw == {**dict(zip(HEADER, ROW, strict=True)), "Reference": "", "Notes": ""}
    assert row.fields == {"customer_id": ROW[0], "payment_source_type": ROW[1], "payment_source_id": ROW[2]}
    assert (row.source_file, row.sheet) == (path, "")


# -- headers ----------------------------------------------------------------------------------


def test_alias_headers(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "a.csv",
        [["Customer E-mail", "PSP token", "metadata.tier"], ["ann@example.com", "tok_1", "gold"]],
    )
    assert load(path)[0].fields == {
        "customer_email": "ann@example.com",
        "payment_source_token": "tok_1",
        "metadata.tier": "gold",
    }
    path = write_csv(tmp_path / "b.csv", [["Email", "Card Token"], ["ann@example.com", "tok_1"]])
    assert load(path)[0].fields == {"customer_email": "ann@example.com", "payment_source_token": "tok_1"}


def test_config_aliases(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "c.csv", [["Kundennummer", "Kartentoken"], ["CUST000001", "tok"]])
    rows = load(path, aliases={"customer_id": ["Kundennummer"], "payment_source_token": ["Kartentoken"]})
    assert rows[0].fields == {"customer_id": "CUST000001", "payment_source_token": "tok"}


def test_bad_config_aliases_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="customer_number"):
        Loader(["x.csv"], aliases={"customer_number": ["Kundennummer"]})


def test_unknown_columns_are_kept_in_raw_and_logged(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "u.csv", [[*HEADER, "Notes"], [*ROW, "hello"]])
    with capture_logs() as logs:
        rows = load(path)
    assert rows[0].raw["Notes"] == "hello" and "Notes" not in rows[0].fields
    assert {
        "event": "input.unknown_columns",
        "file": path,
        "sheet": "",
        "columns": ["Notes"],
        "count": 1,
        "log_level": "info",
    } in logs


def test_repeated_and_blank_unknown_headers_get_unique_raw_keys(tmp_path: Path) -> None:
    path = write_text(tmp_path / "d.csv", ",".join(HEADER) + ",Notes,,Notes\n" + ",".join(ROW) + ",a,b,c\n")
    row = load(path)[0]
    assert list(row.raw)[3:] == ["Notes", "column E", "Notes (column F)"]
    assert list(row.raw.values())[3:] == ["a", "b", "c"]


def test_two_columns_for_one_field_is_an_error_naming_both(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "two.csv", [["Email", "Card Token", "E-mail"], ["a@b.co", "t", "c@d.co"]])
    with pytest.raises(
        SourceError,
        match=r"two.csv: columns 'Email' \(column A\) and 'E-mail' \(column C\) "
        r"both give customer_email",
    ):
        load(path)


def test_missing_required_columns_lists_headers_found_and_fields_expected(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", [["Name", "Card"], ["Ann", "1234"]])
    with pytest.raises(SourceError) as info:
        load(path)
    message = str(info.value)
    assert message.startswith(
        f"{path}: missing required columns: needs a customer column "
        "(customer_id or customer_email) and a payment source "
        "(payment_source_type + payment_source_id, or payment_source_token); "
        "found headers: 'Name', 'Card'"
    )


def test_loaded_rows_validate_and_messages_use_the_files_headers(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "v.csv",
        [
            ["Kunde", "Customer E-mail", "Art", "Karte"],
            ["CUST000001", "", "Stripe Payment", "PSRC000001"],
            ["123", "", "visa", "PSRC000002"],
        ],
    )
    rows = load(
        path,
        aliases={"customer_id": ["Kunde"], "payment_source_type": ["Art"], "payment_source_id": ["Karte"]},
    )
    good, bad = (validate_row(r, Defaults()) for r in rows)
    assert good == Pairing(
        customer_id="CUST000001",
        customer_email=None,
        payment_source_type="stripe_payments",
        payment_source_id="PSRC000001",
        payment_source_type_given="Stripe Payment",  # a loose spelling, kept for 422 messages
    )
    assert isinstance(bad, list)
    assert bad[0].startswith("column 'Kunde': '123' is not a valid id")
    assert bad[1].startswith("column 'Art': 'visa' is not a payment source type")


# -- workbooks and sheets ---------------------------------------------------------------------


def two_sheets(tmp_path: Path) -> str:
    return write_xlsx(
        tmp_path / "two.xlsx",
        {
            "January": [HEADER, ROW, ["CUST000002", "stripe", "PSRC000002"]],
            "Notes": [["Just", "some"], ["notes", "here"]],
            "February": [["Email", "Card Token"], ["ann@example.com", "tok_9"]],
        },
    )


def test_all_sheets_with_required_columns_are_read_in_order(tmp_path: Path) -> None:
    path = two_sheets(tmp_path)
    with capture_logs() as logs:
        rows, loader = load_with(path)
    assert [(r.sheet, r.row_number) for r in rows] == [("January", 2), ("January", 3), ("February", 2)]
    assert rows[2].fields == {"customer_email": "ann@example.com", "payment_source_token": "tok_9"}
    info = loader.file_infos[0]
    assert (info.sheets, info.sheets_skipped, info.format, info.rows) == (
        ("January", "February"),
        ("Notes",),
        FileFormat.XLSX,
        3,
    )
    skipped = [e for e in logs if e["event"] == "input.sheet_skipped"]
    assert len(skipped) == 1 and skipped[0]["sheet"] == "Notes" and "'Just'" in skipped[0]["reason"]


def test_sheet_selection(tmp_path: Path) -> None:
    path = two_sheets(tmp_path)
    rows = load(path, sheets=["February"])
    assert [r.sheet for r in rows] == ["February"]
    rows = load(path, sheets=["february", "January", "February"])  # case forgiven; given order kept
    assert [r.sheet for r in rows] == ["February", "January", "January"]


def test_unknown_sheet_lists_the_sheet_names(tmp_path: Path) -> None:
    path = two_sheets(tmp_path)
    with pytest.raises(
        SourceError,
        match=r"two.xlsx: has no sheet named 'March'; its sheets are: 'January', "
        r"'Notes', 'February'",
    ):
        load(path, sheets=["March"])


def test_a_named_sheet_without_required_columns_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"two.xlsx: sheet 'Notes': missing required columns"):
        load(two_sheets(tmp_path), sheets=["Notes"])


def test_a_workbook_where_no_sheet_has_the_columns(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "none.xlsx", {"A": [["Name"], ["x"]], "B": []})
    with pytest.raises(SourceError) as info:
        load(path)
    assert str(info.value).startswith(f"{path}: no sheet has the required columns: needs a customer column")
    assert "sheet 'A' with headers 'Name'; sheet 'B' (empty)" in str(info.value)


def test_hidden_sheets_are_skipped_unless_named(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "h.xlsx", {"Visible": [HEADER, ROW], "Old": [HEADER, ROW]}, hidden=["Old"])
    rows, loader = load_with(path)
    assert {r.sheet for r in rows} == {"Visible"}
    assert loader.file_infos[0].sheets_skipped == ("Old",)
    assert [r.sheet for r in load(path, sheets=["Old"])] == ["Old"]


def test_an_ods_workbook(tmp_path: Path) -> None:
    path = write_ods(
        tmp_path / "t.ods",
        {
            "Pairs": [[*HEADER, "N"], [*ROW, 4242.0], [], ["CUST000002", "wire", "PSRC000002", 3.5]],
            "Other": [["x"]],
        },
    )
    rows, loader = load_with(path)
    assert [(r.sheet, r.row_number, r.raw["N"]) for r in rows] == [("Pairs", 2, "4242"), ("Pairs", 4, "3.5")]
    info = loader.file_infos[0]
    assert (info.format, info.sheets, info.sheets_skipped, info.blank_rows) == (
        FileFormat.ODS,
        ("Pairs",),
        ("Other",),
        1,
    )


def test_sheet_selection_on_a_csv_is_an_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(
        SourceError, match=r"s.csv: is a CSV/text file, which has no sheets, but --sheet was given"
    ):
        load(write_csv(tmp_path / "s.csv", [HEADER, ROW]), sheets=["X"])


# -- files and folders ------------------------------------------------------------------------


def test_folder_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "b.csv", [HEADER, ["CUST00000B", "stripe", "PSRC00000B"]])
    write_xlsx(folder / "A.xlsx", {"S": [HEADER, ["CUST00000A", "stripe", "PSRC00000A"]]})
    write_csv(folder / "c.TSV", [HEADER, ["CUST00000C", "stripe", "PSRC00000C"]], delimiter="\t")
    (folder / "readme.md").write_text("not data")
    (folder / "~$A.xlsx").write_bytes(b"lock")
    (folder / ".~lock.b.csv#").write_text("lock")
    (folder / "sub").mkdir()
    write_csv(folder / "sub" / "deep.csv", [HEADER, ROW])
    monkeypatch.chdir(tmp_path)
    loader = Loader(["./in/"])
    assert loader.files() == ["./in/A.xlsx", "./in/b.csv", "./in/c.TSV"]
    rows = list(loader)
    assert [(r.source_file, r.fields["customer_id"]) for r in rows] == [
        ("./in/A.xlsx", "CUST00000A"),
        ("./in/b.csv", "CUST00000B"),
        ("./in/c.TSV", "CUST00000C"),
    ]
    assert [i.path for i in loader.file_infos] == ["./in/A.xlsx", "./in/b.csv", "./in/c.TSV"]


def test_a_folder_without_spreadsheets(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("x")
    with pytest.raises(SourceError, match="folder without spreadsheet files"):
        Loader([str(tmp_path)]).files()


def test_a_missing_path_names_it_and_what_to_check(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(SourceError, match=r"nope.csv: does not exist; check the spelling"):
        Loader([missing]).files()


def test_an_unsupported_extension(tmp_path: Path) -> None:
    path = write_text(tmp_path / "data.json", "{}")
    with pytest.raises(SourceError, match=r"data.json: is not a file type the importer reads \(.json\)"):
        load(path)


def test_the_same_file_twice_is_read_once(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "once.csv", [HEADER, ROW])
    assert len(load(path, str(tmp_path / "." / "once.csv"))) == 1


def test_file_info_hash_and_format(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "h.csv", [HEADER, ROW])
    xlsx_path = write_xlsx(tmp_path / "h.xlsx", {"S": [HEADER, ROW]})
    _, loader = load_with(csv_path, xlsx_path)
    infos = loader.file_infos
    assert [i.sha256 for i in infos] == [
        hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in (csv_path, xlsx_path)
    ]
    assert [i.format for i in infos] == [FileFormat.CSV, FileFormat.XLSX]
    assert (infos[1].encoding, infos[1].delimiter, infos[1].sheets) == (None, None, ("S",))


# -- hostile input ----------------------------------------------------------------------------


def test_an_empty_file(tmp_path: Path) -> None:
    for name in ("e.csv", "e.xlsx"):
        path = write_bytes(tmp_path / name, b"")
        with pytest.raises(SourceError, match=rf"{name}: is empty \(0 bytes\)"):
            load(path)


def test_a_file_with_only_blank_lines(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="has no header row"):
        load(write_text(tmp_path / "blank.csv", "\n\n  \n"))


def test_a_png_renamed_csv(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    path = write_bytes(tmp_path / "image.csv", png)
    with pytest.raises(
        SourceError,
        match=r"image.csv: is not a CSV/text file in UTF-8, UTF-16 or Windows-1252; "
        r"export it again as 'CSV UTF-8'",
    ):
        load(path)


def test_a_workbook_renamed_csv(tmp_path: Path) -> None:
    xlsx = write_xlsx(tmp_path / "book.xlsx", {"S": [HEADER, ROW]})
    path = write_bytes(tmp_path / "book.csv", Path(xlsx).read_bytes())
    with pytest.raises(SourceError, match=r"book.csv: is a zip archive \(an .xlsx or .ods workbook\?\)"):
        load(path)


def test_nul_bytes(tmp_path: Path) -> None:
    path = write_bytes(tmp_path / "nul.csv", b"Customer ID,Card Token\r\nCUST000001,t\x00k\r\n")
    with pytest.raises(SourceError, match=r"nul.csv: is not a CSV/text file"):
        load(path)


def test_a_zip_renamed_xlsx(tmp_path: Path) -> None:
    path = tmp_path / "fake.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "not a workbook")
    with pytest.raises(SourceError, match=r"fake.xlsx: is not a valid Excel workbook: .*save it as .xlsx"):
        load(str(path))


@pytest.mark.parametrize("name", ["junk.xlsx", "junk.xls", "junk.ods", "junk.xlsm"])
def test_junk_named_as_a_workbook(tmp_path: Path, name: str) -> None:
    path = write_bytes(tmp_path / name, b"Customer ID,Card Token\nthis is not a workbook\n")
    with pytest.raises(SourceError, match=rf"{name}: is not a valid Excel workbook"):
        load(path)


def test_a_10_mb_cell(tmp_path: Path) -> None:
    big = "x" * 10_000_000
    path = write_csv(tmp_path / "big.csv", [[*HEADER, "Notes"], [*ROW, big], [*ROW[:2], "PSRC000002", "y"]])
    rows = load(path)
    assert len(rows[0].raw["Notes"]) == 10_000_000
    assert [r.row_number for r in rows] == [2, 3]


def test_10000_columns_finish_quickly(tmp_path: Path) -> None:
    heads = [*HEADER, *(f"extra {i}" for i in range(10_000 - len(HEADER)))]
    path = write_csv(tmp_path / "wide.csv", [heads, [*ROW, *("v" for _ in range(10_000 - len(HEADER)))]])
    # CPU seconds of this process, not wall time: other work on a loaded machine cannot push it
    # over, while a quadratic pass over the columns (minutes of CPU) still would.
    started = time.process_time()
    rows = load(path)
    assert time.process_time() - started < 10
    assert len(rows[0].raw) == 10_000 and rows[0].raw["extra 9996"] == "v"


def test_an_absurdly_wide_header_is_refused_fast(tmp_path: Path) -> None:
    path = write_text(tmp_path / "wider.csv", ",".join(HEADER) + "," * 20_000 + "\n")
    with pytest.raises(SourceError, match="more than 16,384 columns"):
        load(path)


@pytest.mark.slow
def test_memory_stays_flat_as_files_grow(tmp_path: Path) -> None:
    """Peak traced memory while streaming does not grow with the file; 200k rows stream through.

    tracemalloc makes every allocation ~5x slower, so the traced comparison uses 12.5k vs 50k
    rows (4x) and the 200k-row file is counted untraced. The peak is reset after the first row
    so the (bounded, 1 MiB-block) encoding check does not hide what streaming costs.
    """

    def generate(rows: int) -> str:
        path = tmp_path / f"m{rows}.csv"
        lines = ["Customer ID,Payment Source Type,Payment Source ID,Reference"]
        lines += [f"C{i:09d},stripe_payments,P{i:09d},reference {i}" for i in range(rows)]
        path.write_text("\r\n".join(lines) + "\r\n")
        return str(path)

    def count_with_peak(path: str) -> tuple[int, int]:
        tracemalloc.start()
        try:
            rows = iter(Loader([path], chunk_rows=2_500))
            next(rows)
            tracemalloc.reset_peak()
            count = 1 + sum(1 for _ in rows)
            return count, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small_count, small_peak = count_with_peak(generate(12_500))
    big_count, big_peak = count_with_peak(generate(50_000))
    assert (small_count, big_count) == (12_500, 50_000)
    assert big_peak < 2 * small_peak, (small_peak, big_peak)
    assert big_peak < 8_000_000  # holding 50k rows would take tens of MB

    huge = generate(200_000)
    assert os.path.getsize(huge) > 10_000_000
    loader = Loader([huge])
    assert sum(1 for _ in loader) == 200_000
    assert loader.file_infos[0].rows == 200_000


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 51, 52, 701, 702, 16383)] == [
        "A",
        "Z",
        "AA",
        "AZ",
        "BA",
        "ZZ",
        "AAA",
        "XFD",
    ]


def test_messages_name_the_column_the_field_came_from_even_when_values_repeat(tmp_path: Path) -> None:
    """An unmapped column holding the same bad value must not be named instead of the real one."""
    path = write_csv(
        tmp_path / "alias.csv",
        [
            ["Old ID", "Kunden-ID", "Payment Source Type", "Payment Source ID"],
            ["123", "123", "stripe_payments", "PSRC000001"],
        ],
    )
    loader = Loader([str(path)], aliases={"customer_id": ["Kunden-ID"]})
    (row,) = list(loader)
    assert row.columns["customer_id"] == "Kunden-ID"
    problems = validate_row(row, Defaults())
    assert isinstance(problems, list)
    assert any(p.startswith("column 'Kunden-ID':") for p in problems), problems
