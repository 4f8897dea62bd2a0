"""Issue 9, the reading side: what finance teams really send, read as they see it.

Every file is built here: xlsxwriter says what Excel stored (number formats, hidden rows and
sheets, merged titles), CSV text is written byte for byte.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter
from spreadsheets import HEADER, load, load_with, write_csv, write_text, write_xlsx
from structlog.testing import capture_logs

from importer.errors import SourceError
from importer.loader import Loader
from importer.models import Pairing
from importer.validator import Defaults, validate_row

ROW = ["CUST000001", "stripe_payments", "PSRC000001"]


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


# -- no cell is ever dropped ----------------------------------------------------------------------


def test_an_unquoted_comma_in_the_last_column_fails_the_row_naming_the_rest(tmp_path: Path) -> None:
    path = write_text(
        tmp_path / "r.csv",
        "Customer ID,Payment Source Type,Payment Source ID,Reference\n"
        "CUST000001,stripe_payments,PSRC000001,Invoice 2024-000, Rossi\n"
        "CUST000002,stripe_payments,PSRC000002,Invoice 2024-001\n",
    )
    rows = load(path)
    assert rows[0].raw["Reference"] == "Invoice 2024-000"
    found = validate_row(rows[0], Defaults())
    assert isinstance(found, list) and len(found) == 1
    assert "1 more value than the header has columns: 'Rossi'" in found[0]
    assert "delimiter without quotes" in found[0]
    assert rows[0].raw["extra_values"] == "Rossi"  # kept, so failures.csv carries it
    assert isinstance(validate_row(rows[1], Defaults()), Pairing)
    assert "extra_values" not in rows[1].raw


def test_many_extra_cells_are_all_seen_and_empty_trailing_cells_are_not_extra(tmp_path: Path) -> None:
    extra = [f"x{i}" for i in range(40)]
    path = write_csv(tmp_path / "w.csv", [HEADER, [*ROW, *extra], [*ROW[:2], "PSRC000002", "", "", ""]])
    rows = load(path)
    assert "40 more values" in rows[0].cell_errors[0] and "'x0'" in rows[0].cell_errors[0]
    assert "and 35 more" in rows[0].cell_errors[0]
    assert rows[1].cell_errors == ()


def test_a_workbook_value_right_of_the_last_header_fails_the_row(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "x.xlsx", {"S": [HEADER, [*ROW, None, "checked"], [*ROW[:2], "PSRC000002"]]})
    rows = load(path)
    assert len(rows[0].cell_errors) == 1
    assert "to the right of the last column with a header: 'checked'" in rows[0].cell_errors[0]
    assert rows[1].cell_errors == ()


# -- Excel values as displayed ---------------------------------------------------------------------


def _formatted_book(path: Path) -> str:
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("S")
    padded10 = book.add_format({"num_format": "0000000000"})
    padded5 = book.add_format({"num_format": "00000"})
    fixed = book.add_format({"num_format": "0.00"})
    grouped = book.add_format({"num_format": "#,##0"})
    text = book.add_format({"num_format": "@"})
    currency = book.add_format({"num_format": '"€"#,##0.00'})
    sheet.write_row(
        0, 0, ["Customer ID", "Payment Source Type", "Payment Source ID", "Reference", "Note", "n2"]
    )
    sheet.write_number(1, 0, 12345678, padded10)
    sheet.write_string(1, 1, "stripe_payments")
    sheet.write_string(1, 2, "PSRC000001")
    sheet.write_number(1, 3, 123, padded5)
    sheet.write_number(1, 4, 1.5, fixed)
    sheet.write_number(1, 5, 1234567, grouped)
    sheet.write_string(2, 0, "CUST000002")
    sheet.write_string(2, 1, "stripe_payments")
    sheet.write_string(2, 2, "PSRC000002")
    sheet.write_number(2, 3, 123)  # General: as today
    sheet.write_number(2, 4, 0.1, text)  # a number in a Text cell shows as General
    sheet.write_number(2, 5, 3.14159, currency)
    sheet.write_number(3, 0, 1234567890123456, padded10)  # 16 digits: lost, whatever the format
    sheet.write_string(3, 1, "stripe_payments")
    sheet.write_string(3, 2, "PSRC000003")
    book.close()
    return str(path)


def test_number_formats_decide_the_digits_as_excel_shows_them(tmp_path: Path) -> None:
    rows = load(_formatted_book(tmp_path / "f.xlsx"))
    assert [r.raw["Customer ID"] for r in rows[:2]] == ["0012345678", "CUST000002"]
    assert [r.raw["Reference"] for r in rows[:2]] == ["00123", "123"]
    assert [r.raw["Note"] for r in rows[:2]] == ["1.50", "0.1"]
    assert [r.raw["n2"] for r in rows[:2]] == ["1,234,567", "3.14"]
    first = validate_row(rows[0], Defaults())
    assert isinstance(first, Pairing) and first.customer_id == "0012345678"
    assert first.reference == "00123"
    assert rows[2].raw["Customer ID"] == "1234567890123456"
    assert "15 digits" in rows[2].cell_errors[0]


def test_metadata_columns_keep_json_types_from_a_workbook_and_text_from_a_csv(tmp_path: Path) -> None:
    heads = [*HEADER, "metadata.amount", "metadata.count", "metadata.vip", "metadata.since", "metadata.code"]
    cells: list[Any] = [*ROW, 12.5, 3, True, datetime(2024, 5, 1), "007"]
    book = load(write_xlsx(tmp_path / "m.xlsx", {"S": [heads, cells]}))[0]
    pairing = validate_row(book, Defaults())
    assert isinstance(pairing, Pairing)
    assert pairing.metadata == {"amount": 12.5, "count": 3, "vip": True, "since": "2024-05-01", "code": "007"}
    text = load(write_csv(tmp_path / "m.csv", [heads, [*ROW, "12.5", "3", "TRUE", "2024-05-01", "007"]]))[0]
    pairing = validate_row(text, Defaults())
    assert isinstance(pairing, Pairing)
    assert pairing.metadata == {
        "amount": "12.5",
        "count": "3",
        "vip": "TRUE",
        "since": "2024-05-01",
        "code": "007",
    }


# -- apostrophes and our own reports ---------------------------------------------------------------


def test_a_raw_apostrophe_is_kept_and_a_report_points_at_the_original_rows(tmp_path: Path) -> None:
    raw = load(write_csv(tmp_path / "raw.csv", [[*HEADER, "Reference"], [*ROW, "'-5 promo"]]))[0]
    assert raw.fields["reference"] == "'-5 promo"
    head = ["source_file", "source_sheet", "source_row", "customer_id", "payment_source_type",
            "payment_source_id", "reference", "Notes", "error_code", "error_detail"]  # fmt: skip
    report = write_csv(
        tmp_path / "failures.csv",
        [
            head,
            ["in/book.xlsx", "Q4", "17", *ROW, "'-5 promo", "'=x", "NOT_FOUND", "'@gone"],
            ["", "", "", "CUST000002", "stripe_payments", "PSRC000002", "r", "", "X", ""],
        ],
    )
    rows, loader = load_with(report)
    assert [(r.source_file, r.sheet, r.row_number) for r in rows] == [
        ("in/book.xlsx", "Q4", 17),
        (report, "", 3),  # no source given: the report's own row
    ]
    assert rows[0].raw == {
        "customer_id": "CUST000001",
        "payment_source_type": "stripe_payments",
        "payment_source_id": "PSRC000001",
        "reference": "-5 promo",
        "Notes": "=x",
    }
    assert loader.file_infos[0].report is True


def test_a_report_with_a_header_and_no_rows_loads_as_zero_rows(tmp_path: Path) -> None:
    head = ["source_file", "source_sheet", "source_row", "customer_id", "payment_source_type",
            "payment_source_id", "error_code", "error_detail"]  # fmt: skip
    rows, loader = load_with(write_csv(tmp_path / "failures.csv", [head]))
    assert rows == [] and loader.file_infos[0].rows == 0


# -- header row ------------------------------------------------------------------------------------


def test_a_title_and_notes_above_the_header_are_skipped_and_row_numbers_stay_excels(tmp_path: Path) -> None:
    table = [
        ["Wallet migration Q4 – prepared by Finance"],
        ["Do not edit the grey columns", None, "v3"],
        [],
        HEADER,
        ROW,
    ]
    for path in (
        write_xlsx(tmp_path / "t.xlsx", {"S": table}),
        write_csv(tmp_path / "t.csv", [[c or "" for c in r] for r in table]),
    ):
        with capture_logs() as logs:
            rows, loader = load_with(path)
        assert [(r.row_number, r.fields["customer_id"]) for r in rows] == [(5, "CUST000001")]
        assert [e["row"] for e in events(logs, "input.header_row")] == [4]
        assert loader.file_infos[0].header_rows == (4,)


def test_header_row_overrides_the_search(tmp_path: Path) -> None:
    # Row 1 holds the required columns too (an old header kept as a note); the user says row 3.
    table = [HEADER, ["old header above"], [*HEADER, "Reference"], [*ROW, "r1"]]
    path = write_xlsx(tmp_path / "h.xlsx", {"S": table})
    assert [r.row_number for r in load(path)] == [2, 3, 4]  # found: row 1 (the first that qualifies)
    rows = load(path, header_row=3)
    assert [(r.row_number, r.fields.get("reference")) for r in rows] == [(4, "r1")]
    csv_path = write_csv(tmp_path / "h.csv", [[c or "" for c in r] for r in table])
    assert [r.row_number for r in load(csv_path, header_row=3)] == [4]
    with pytest.raises(SourceError, match=r"--header-row 9: that row is empty or past the end"):
        load(csv_path, header_row=9)


def test_a_header_below_20_rows_of_notes_is_not_searched_for(tmp_path: Path) -> None:
    table = [[f"note {i}"] for i in range(20)] + [HEADER, ROW]
    with pytest.raises(SourceError, match="missing required columns"):
        load(write_csv(tmp_path / "n.csv", table))
    assert [r.row_number for r in load(write_csv(tmp_path / "n2.csv", table), header_row=21)] == [22]


def test_a_two_row_merged_header_gives_one_message_saying_what_to_change(tmp_path: Path) -> None:
    book = xlsxwriter.Workbook(str(tmp_path / "m.xlsx"))
    sheet = book.add_worksheet("S")
    sheet.merge_range(0, 0, 0, 1, "Customer")
    sheet.merge_range(0, 2, 0, 3, "Payment source")
    sheet.write_row(1, 0, ["ID", "Name", "Type", "ID"])
    sheet.write_row(2, 0, ["CUST000001", "Ada", "stripe_payments", "PSRC000001"])
    book.close()
    with capture_logs() as logs, pytest.raises(SourceError) as caught:
        load(str(tmp_path / "m.xlsx"))
    message = str(caught.value)
    assert "rows 1 and 2 look like one header written over two rows (merged cells)" in message
    assert "unmerge the cells" in message
    assert "missing required columns" not in message and "no sheet has" not in message
    assert len(events(logs, "input.sheet_skipped")) == 1
    csv_path = write_csv(
        tmp_path / "m.csv", [["Customer", "", "Payment source", ""], ["ID", "Name", "Type", "ID"]]
    )
    with pytest.raises(SourceError, match="written over two rows"):
        load(csv_path)


# -- headers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "kind", "source", "ref"),
    [
        ("Courriel", "Type de source de paiement", "ID source de paiement", "Référence"),
        ("Kunden-E-Mail", "Zahlungsquellentyp", "Zahlungsquellen-ID", "Referenz"),
        ("Correo electrónico", "Tipo de fuente de pago", "ID de fuente de pago", "Referencia"),
        ("Email cliente", "Tipo di fonte di pagamento", "ID fonte di pagamento", "Riferimento"),
        ("E-mail do cliente", "Tipo de fonte de pagamento", "ID da fonte de pagamento", "Referência"),
        ("E-mailadres", "Type betaalbron", "Betaalbron-ID", "Referentie"),
    ],
)
def test_headers_in_six_languages(tmp_path: Path, email: str, kind: str, source: str, ref: str) -> None:
    path = write_csv(
        tmp_path / "l.csv", [[email, kind, source, ref], ["a@b.de", "stripe", "PSRC000001", "r"]]
    )
    assert load(path)[0].fields == {
        "customer_email": "a@b.de",
        "payment_source_type": "stripe",
        "payment_source_id": "PSRC000001",
        "reference": "r",
    }


def test_a_customer_column_of_names_is_not_the_id_when_an_email_column_names_the_customer(
    tmp_path: Path,
) -> None:
    head = ["Customer", "Email", "Payment Source Type", "Payment Source ID"]
    names = [
        ["Ada Lovelace", "ada@example.com", "stripe", "PSRC000001"],
        ["Bob", "bob@example.com", "stripe", "PSRC000002"],
    ]
    rows = load(write_csv(tmp_path / "n.csv", [head, *names]))
    assert all(isinstance(validate_row(r, Defaults()), Pairing) for r in rows)
    assert "customer_id" not in rows[0].fields and rows[0].raw["Customer"] == "Ada Lovelace"
    # Gateway customers in the same column are customer tokens.
    tokens = [["ada@example.com", "cus_Nf0aXk2", "tok_1"], ["bob@example.com", "cus_Q9bm2", "tok_2"]]
    rows = load(write_csv(tmp_path / "c.csv", [["Email", "Customer", "Card Token"], *tokens]))
    assert rows[0].fields == {
        "customer_email": "ada@example.com",
        "customer_token": "cus_Nf0aXk2",
        "payment_source_token": "tok_1",
    }
    # Near misses: ids in the column keep it the id; without an e-mail column it stays the id.
    rows = load(
        write_csv(tmp_path / "i.csv", [head, ["CUST000001", "ada@example.com", "stripe", "PSRC000001"]])
    )
    assert rows[0].fields["customer_id"] == "CUST000001"
    rows = load(write_csv(tmp_path / "o.csv", [["Customer", "Card Token"], ["Ada Lovelace", "tok"]]))
    assert rows[0].fields["customer_id"] == "Ada Lovelace"
    # The user's own alias is never second-guessed.
    rows = load(write_csv(tmp_path / "n2.csv", [head, *names]), aliases={"customer_id": ["Customer"]})
    assert rows[0].fields["customer_id"] == "Ada Lovelace"


def test_a_stripe_customer_column_is_the_customer_token(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "s.csv",
        [["Customer ID", "Stripe Customer ID", "Card Token"], ["CUST000001", "cus_1", "pm_1"]],
    )
    assert load(path)[0].fields == {
        "customer_id": "CUST000001",
        "customer_token": "cus_1",
        "payment_source_token": "pm_1",
    }


# -- hidden rows and sheets ------------------------------------------------------------------------


def test_hidden_rows_and_hidden_sheets_are_both_skipped_with_a_notice_naming_them(tmp_path: Path) -> None:
    path = tmp_path / "h.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("Data")
    for r, row in enumerate(
        [
            HEADER,
            ROW,
            ["CUST000002", "stripe_payments", "PSRC000002"],
            ["CUST000003", "stripe_payments", "PSRC000003"],
        ]
    ):
        sheet.write_row(r, 0, row)
    sheet.set_row(2, None, None, {"hidden": True})
    old = book.add_worksheet("Old")
    old.write_row(0, 0, HEADER)
    old.write_row(1, 0, ["CUST000009", "stripe_payments", "PSRC000009"])
    old.hide()
    book.close()
    with capture_logs() as logs:
        rows, loader = load_with(str(path))
    assert [r.row_number for r in rows] == [2, 4]
    hidden = events(logs, "input.hidden_rows_skipped")
    assert [(e["sheet"], e["rows"], e["count"]) for e in hidden] == [("Data", [3], 1)]
    assert [e["sheet"] for e in events(logs, "input.sheet_skipped")] == ["Old"]
    info = loader.file_infos[0]
    assert (info.hidden_rows, info.sheets, info.sheets_skipped) == (1, ("Data",), ("Old",))


# -- folders and --sheet ---------------------------------------------------------------------------


def test_a_folder_skips_what_is_not_a_spreadsheet_with_a_notice(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write_csv(folder / "a.csv", [HEADER, ROW])
    (folder / "README.txt").write_text("Exports from the ERP.\nAsk Finance before re-running.\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "scan.pdf").write_bytes(b"%PDF-1.4")
    write_csv(folder / "b.txt", [HEADER, ["CUST000002", "stripe_payments", "PSRC000002"]], delimiter="\t")
    with capture_logs() as logs:
        loader = Loader([str(folder)])
        loader.files()  # the pipeline lists the files before it reads them: one notice each all the same
        rows = list(loader)
    assert [r.fields["customer_id"] for r in rows] == ["CUST000001", "CUST000002"]
    skipped = {Path(e["file"]).name: e["reason"] for e in events(logs, "input.file_skipped")}
    assert set(skipped) == {"README.txt", ".DS_Store", "scan.pdf"}
    assert len(events(logs, "input.file_skipped")) == 3
    assert skipped["README.txt"].startswith("not a table")
    # Named on its own, a text file without a table is still an error.
    with pytest.raises(SourceError, match=r"README\.txt: missing required columns"):
        load(str(folder / "README.txt"))


def test_sheet_on_a_csv_in_a_mixed_run_names_the_csv(tmp_path: Path) -> None:
    book = write_xlsx(tmp_path / "b.xlsx", {"S": [HEADER, ROW]})
    text = write_csv(tmp_path / "t.csv", [HEADER, ROW])
    with pytest.raises(SourceError, match=r"t.csv: is a CSV/text file, which has no sheets"):
        load(book, text, sheets=["S"])


# -- totals rows -----------------------------------------------------------------------------------


TOTALS_HEAD = ["Customer Email", "Payment Source Type", "Payment Source ID", "Amount", "Reference"]


@pytest.mark.parametrize(
    "totals",
    [
        ["Total", "", "", "1,234.50", ""],
        ["", "", "", "99", "Summe:"],
        ["TOTALE", "", "", "€ 12", ""],
        ["Grand total", "", "", "12", "3"],
    ],
)
def test_a_totals_row_is_skipped_with_a_notice_and_counted_with_blank_rows(
    tmp_path: Path, totals: list[str]
) -> None:
    data = ["a@b.de", "stripe", "PSRC000001", "1234.50", "r"]
    for path in (
        write_csv(tmp_path / "t.csv", [TOTALS_HEAD, data, totals]),
        write_xlsx(tmp_path / "t.xlsx", {"S": [TOTALS_HEAD, data, totals]}),
    ):
        with capture_logs() as logs:
            rows, loader = load_with(path)
        assert [r.row_number for r in rows] == [2]
        assert [e["row"] for e in events(logs, "input.totals_row_skipped")] == [3]
        info = loader.file_infos[0]
        assert (info.totals_rows, info.blank_rows, loader.rows_skipped_blank) == ((3,), 1, 1)


@pytest.mark.parametrize(
    "near_miss",
    [
        ["Total", "stripe", "PSRC000001", "12", ""],  # a payment source: data (invalid customer)
        ["a@b.de", "", "", "12", "Total"],  # a customer: data
        ["Totals for Q4", "", "", "12", ""],  # not the whole cell
        ["Total", "", "", "12", "see note"],  # text beside the label
        ["Total", "", "", "", ""],  # no sum
        ["Total", "", "", "12", "Summe"],  # two labels
        ["", "stripe", "", "Total", "12"],  # a type given
    ],
)
def test_near_misses_of_a_totals_row_stay_data(tmp_path: Path, near_miss: list[str]) -> None:
    rows = load(write_csv(tmp_path / "n.csv", [TOTALS_HEAD, near_miss]))
    assert [r.row_number for r in rows] == [2]


def test_a_real_token_row_with_a_numeric_id_and_a_total_reference_is_imported(tmp_path: Path) -> None:
    head = ["Customer ID", "Card Token", "Reference"]
    rows = load(write_csv(tmp_path / "d.csv", [head, ["1234567890", "555", "Total"]]))
    assert isinstance(validate_row(rows[0], Defaults()), Pairing)


# -- header-only file ------------------------------------------------------------------------------


def test_a_header_only_file_reports_zero_rows(tmp_path: Path) -> None:
    for path in (write_csv(tmp_path / "h.csv", [HEADER]), write_xlsx(tmp_path / "h.xlsx", {"S": [HEADER]})):
        rows, loader = load_with(path)
        assert rows == [] and [i.rows for i in loader.file_infos] == [0]


def test_header_row_below_one_is_refused() -> None:
    with pytest.raises(SourceError.__mro__[1], match="numbered from 1"):
        Loader(["x.csv"], header_row=0)


# -- .ods ------------------------------------------------------------------------------------------


def _ods(path: Path, rows_xml: str) -> str:
    import zipfile

    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
        'xmlns:number="urn:oasis:names:tc:opendocument:xmlns:datastyle:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:automatic-styles><number:number-style style:name="N1">'
        '<number:number number:min-integer-digits="5"/></number:number-style></office:automatic-styles>'
        f'<office:body><office:spreadsheet><table:table table:name="S">{rows_xml}</table:table>'
        "</office:spreadsheet></office:body></office:document-content>"
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


def _cell(value: str | float, shown: str | None = None) -> str:
    if isinstance(value, str):
        return f'<table:table-cell office:value-type="string"><text:p>{value}</text:p></table:table-cell>'
    return (
        f'<table:table-cell office:value-type="float" office:value="{value!r}">'
        f"<text:p>{shown if shown is not None else value}</text:p></table:table-cell>"
    )


def test_an_ods_number_reads_as_displayed_and_hidden_rows_are_skipped(tmp_path: Path) -> None:
    head = "".join(_cell(h) for h in [*HEADER, "Reference", "Amount"])
    rows_xml = (
        f"<table:table-row>{head}</table:table-row>"
        f"<table:table-row>{''.join(_cell(c) for c in ROW)}{_cell(123, '00123')}{_cell(1.5, '1,50')}"
        "</table:table-row>"
        f'<table:table-row table:visibility="filter">{"".join(_cell(c) for c in ROW)}</table:table-row>'
        f"<table:table-row>{''.join(_cell(c) for c in ROW)}{_cell(7)}{_cell(1234.5, '1.234,50')}"
        "</table:table-row>"
    )
    with capture_logs() as logs:
        rows = load(_ods(tmp_path / "o.ods", rows_xml))
    assert [(r.row_number, r.raw["Reference"], r.raw["Amount"]) for r in rows] == [
        (2, "00123", "1.50"),
        (4, "7", "1234.5"),  # General, and a grouped number reads as General
    ]
    assert [e["rows"] for e in events(logs, "input.hidden_rows_skipped")] == [[3]]


# -- .xls ------------------------------------------------------------------------------------------


def test_an_xls_number_reads_as_displayed_and_hidden_rows_are_skipped(tmp_path: Path) -> None:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("S")
    padded, fixed = xlwt.easyxf(num_format_str="0000000000"), xlwt.easyxf(num_format_str="0.00")
    for column, header in enumerate([*HEADER, "Reference", "Amount"]):
        sheet.write(0, column, header)
    for row, customer in ((1, 12345678), (2, 22222222), (3, 33333333)):
        sheet.write(row, 0, customer, padded)
        sheet.write(row, 1, "stripe_payments")
        sheet.write(row, 2, f"PSRC00000{row}")
        sheet.write(row, 3, 123)  # General
        sheet.write(row, 4, 1.5, fixed)
    sheet.row(2).hidden = True
    book.save(str(tmp_path / "old.xls"))
    with capture_logs() as logs:
        rows = load(str(tmp_path / "old.xls"))
    assert [(r.row_number, r.raw["Customer ID"], r.raw["Reference"], r.raw["Amount"]) for r in rows] == [
        (2, "0012345678", "123", "1.50"),
        (4, "0033333333", "123", "1.50"),
    ]
    assert [e["rows"] for e in events(logs, "input.hidden_rows_skipped")] == [[3]]


def test_a_customer_column_next_to_a_customer_id_column_is_not_a_conflict_when_it_holds_no_ids(
    tmp_path: Path,
) -> None:
    head = ["Customer", "Customer ID", "Card Token"]
    rows = load(write_csv(tmp_path / "n.csv", [head, ["Ada Lovelace", "CUST000001", "tok"]]))
    assert rows[0].fields == {"customer_id": "CUST000001", "payment_source_token": "tok"}
    rows = load(write_csv(tmp_path / "c.csv", [head, ["cus_9Xa", "CUST000001", "tok"]]))
    assert rows[0].fields == {
        "customer_id": "CUST000001",
        "customer_token": "cus_9Xa",
        "payment_source_token": "tok",
    }
    # Two columns of ids are still two columns for one field: the user must say which.
    with pytest.raises(SourceError, match="both give customer_id"):
        load(write_csv(tmp_path / "i.csv", [head, ["CUST000002", "CUST000001", "tok"]]))


def test_a_title_above_a_header_that_lacks_a_column_gets_the_headers_message(tmp_path: Path) -> None:
    table = [["Export of 2024-05-01"], ["Name", "Email", "Card"], ["Ada", "a@b.de", "x"]]
    for path in (write_csv(tmp_path / "t.csv", table), write_xlsx(tmp_path / "t.xlsx", {"S": table})):
        with pytest.raises(SourceError) as caught:
            load(path)
        message = str(caught.value)
        assert "a payment source" in message and "'Name', 'Email', 'Card'" in message
        assert "over two rows" not in message and "Export of" not in message
