"""The report files, written from a journal, and `importer report` rebuilding them."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_files import (
    error_message,
    read_csv,
    read_csv_rows,
    xlsx_autofilter,
    xlsx_cell_kinds,
    xlsx_frozen_at,
    xlsx_sheet_names,
    xlsx_values,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from importer import report
from importer.columns import FAILURE_CORE_FIELDS, FAILURE_LEAD_COLUMNS
from importer.config import Settings
from importer.errors import PreflightError, UsageError
from importer.journal import REPORT_COLUMNS, Journal
from importer.models import Outcome, Pairing, RowStatus, statuses_for
from importer.neutralize import unneutralize
from importer.rebuild import rebuild_report
from importer.report import print_summary, summary_lines, write_reports

RUN = "20260101T000000Z-abcdef"
TARGET = "https://acme.commercelayer.io"
FORMULA = '=HYPERLINK("x")'
# failures.csv's columns before and after the values (importer/columns.py).
LEAD = list(FAILURE_LEAD_COLUMNS)
CORE = list(FAILURE_CORE_FIELDS)
EMPTY_CORE = [""] * len(CORE)


def pairing(n: int, **kw: Any) -> Pairing:
    base: dict[str, Any] = {
        "customer_id": f"CUST{n:06d}",
        "customer_email": None,
        "payment_source_type": "stripe_payments",
        "payment_source_id": f"PSRC{n:06d}",
    }
    return Pairing(**(base | kw))


class Rows:
    """Adds rows to a journal run the way intake and the dispatcher leave them: `raw` is keyed by
    canonical field names, then the input's other headers (columns.input_values)."""

    def __init__(self, journal: Journal, run_id: str = RUN) -> None:
        self.journal, self.run_id, self.seq = journal, run_id, 0

    def add(
        self,
        raw: dict[str, str],
        status: str,
        p: Pairing | None = None,
        *,
        file: str = "in.csv",
        sheet: str = "",
        error_code: str | None = None,
        error_detail: str | None = None,
        outcome: Outcome | None = None,
    ) -> int:
        seq = self.seq
        self.seq += 1
        self.journal.add_rows(
            self.run_id,
            [
                (
                    seq,
                    file,
                    sheet,
                    seq + 2,
                    json.dumps(raw),
                    p.key() if p else None,
                    p.to_json() if p else None,
                    status,
                    error_code,
                    error_detail,
                )
            ],
        )
        if outcome is not None:
            self.journal.set_outcome(self.run_id, seq, outcome)
        return seq


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "journal.sqlite")
    j.start_run(RUN, command="run", target=TARGET, inputs_fingerprint="fp")
    yield j
    j.close()


SUMMARY: dict[str, Any] = {
    "run_id": RUN,
    "command": "run",
    "rows_total": 5,
    "rows_skipped_blank": 2,
    "counts": {"created": 2, "already_exists": 0, "invalid": 1, "failed": 1, "duplicate_in_file": 1},
    "files": [{"path": "in.csv", "sha256": "ab" * 32, "sheets": ["Sheet1"]}],
    "config_fingerprint": "0123456789abcdef",
}


def fill(journal: Journal) -> Rows:
    rows = Rows(journal)
    rows.add(
        {"customer_id": "CUST000000", "Notes": "ok"},
        "created",
        pairing(0, reference="+33 6 12"),
        outcome=Outcome(RowStatus.CREATED, "cpsAAAAAAA", "CUST000000", 201, attempts=1),
    )
    rows.add(
        {"customer_id": "bad", "Notes": FORMULA},
        "invalid",
        error_code="INVALID_ROW",
        error_detail="column 'Customer': 'bad' is not a valid id",
    )
    rows.add(
        {"customer_id": "CUST000002", "Extra": "-5", "Notes": "x"},
        "pending",
        pairing(2),
        outcome=Outcome(RowStatus.FAILED, None, "CUST000002", 422, "VALIDATION", "@source is taken", 3),
    )
    rows.add(
        {"customer_email": "a@b.co"},
        "duplicate_in_file",
        pairing(3),
        file="b.xlsx",
        sheet="June",
        error_code="DUPLICATE_IN_FILE",
        error_detail="same pairing as in.csv row 2",
    )
    rows.add(
        {"customer_id": "CUST000004"},
        "pending",
        pairing(4),
        outcome=Outcome(RowStatus.ALREADY_EXISTS, "cpsBBBBBBB", "CUST000004", 200),
    )
    return rows


# -- results.csv ---------------------------------------------------------------------------------
def test_results_csv(journal: Journal, tmp_path: Path) -> None:
    fill(journal)
    out = tmp_path / "report"
    write_reports(journal, RUN, out, ["csv"], SUMMARY)
    raw_bytes = (out / "results.csv").read_bytes()
    assert raw_bytes.startswith(b"source_file,")  # the machine contract: no BOM before the header
    rows = read_csv_rows(out / "results.csv")
    assert tuple(rows[0]) == REPORT_COLUMNS
    assert ",".join(rows[0]) == (
        "source_file,sheet,row_number,status,customer_payment_source_id,customer_id,customer_email,"
        "payment_source_type,payment_source_id,payment_source_token,reference,http_status,error_code,"
        "error_detail,attempts,changed_fields"
    )
    lines = read_csv(out / "results.csv")
    assert [r["status"] for r in lines] == [
        "created",
        "invalid",
        "failed",
        "duplicate_in_file",
        "already_exists",
    ]
    assert [r["row_number"] for r in lines] == ["2", "3", "4", "5", "6"]
    first = lines[0]
    assert first["customer_payment_source_id"] == "cpsAAAAAAA"
    assert first["http_status"] == "201" and first["attempts"] == "1"
    assert first["reference"] == "'+33 6 12"  # neutralized; the loader gives back +33 6 12
    assert unneutralize(first["reference"]) == "+33 6 12"
    assert first["payment_source_token"] == ""  # None is an empty cell
    invalid = lines[1]
    # An invalid row shows the values it was given, as typed.
    assert invalid["customer_id"] == "bad" and invalid["http_status"] == "" and invalid["attempts"] == "0"
    assert invalid["error_detail"] == "column 'Customer': 'bad' is not a valid id"
    assert lines[2]["error_detail"] == "'@source is taken"
    assert lines[3]["source_file"] == "b.xlsx" and lines[3]["sheet"] == "June"


def test_results_csv_of_an_empty_run(journal: Journal, tmp_path: Path) -> None:
    write_reports(journal, RUN, tmp_path / "r", ["csv"], {"counts": {}})
    assert read_csv_rows(tmp_path / "r" / "results.csv") == [list(REPORT_COLUMNS)]
    # A header that loads even with no rows: fed back, it is 0 rows (test_cli_validate).
    assert read_csv_rows(tmp_path / "r" / "failures.csv") == [[*LEAD, *CORE, "error_code", "error_detail"]]


def test_results_csv_header_is_the_exact_contract_without_bom(journal: Journal, tmp_path: Path) -> None:
    """Scheduled jobs parse results.csv: its first bytes are the header, no BOM before it.
    failures.csv is for Excel users and keeps a BOM so accents survive."""
    write_reports(journal, RUN, tmp_path, ["csv"], {})
    first_line = (tmp_path / "results.csv").read_bytes().split(b"\r\n")[0]
    assert first_line == ",".join(REPORT_COLUMNS).encode()
    assert (tmp_path / "failures.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_pending_rows_are_reported_not_attempted(journal: Journal, tmp_path: Path) -> None:
    Rows(journal).add({"customer_id": "CUST000001"}, "pending", pairing(1))
    write_reports(journal, RUN, tmp_path, ["csv"], {})
    assert read_csv(tmp_path / "results.csv")[0]["status"] == "not_attempted"
    assert read_csv(tmp_path / "failures.csv") == [
        {
            "source_file": "in.csv",
            "source_sheet": "",
            "source_row": "2",
            **dict.fromkeys(CORE, ""),
            "customer_id": "CUST000001",
            "error_code": "",
            "error_detail": "",
        }
    ]


# -- failures.csv --------------------------------------------------------------------------------
def test_failures_csv_has_source_then_fields_then_extras_then_errors(
    journal: Journal, tmp_path: Path
) -> None:
    fill(journal).add(
        {"customer_id": "CUST000009", "metadata.tier": "gold", "reference": "r", "Notes": "n"},
        "invalid",
        error_code="INVALID_ROW",
        error_detail="d",
    )
    write_reports(journal, RUN, tmp_path, ["csv"], SUMMARY)
    rows = read_csv_rows(tmp_path / "failures.csv")
    # Canonical fields in canonical order (reference after the core ones), metadata.<key>, then
    # the extra columns in order of first appearance.
    assert rows[0] == [
        *LEAD,
        *CORE,
        "reference",
        "metadata.tier",
        "Notes",
        "Extra",
        "error_code",
        "error_detail",
    ]
    tail = ["", "", "", ""]  # reference, metadata.tier, Notes, Extra
    assert rows[1:] == [
        ["in.csv", "", "3", "bad", *EMPTY_CORE[1:], "", "", "'" + FORMULA, "", "INVALID_ROW",
         "column 'Customer': 'bad' is not a valid id"],
        ["in.csv", "", "4", "CUST000002", *EMPTY_CORE[1:], "", "", "x", "'-5", "VALIDATION",
         "'@source is taken"],
        ["b.xlsx", "June", "5", "", "a@b.co", *EMPTY_CORE[2:], *tail, "DUPLICATE_IN_FILE",
         "same pairing as in.csv row 2"],
        ["in.csv", "", "7", "CUST000009", *EMPTY_CORE[1:], "r", "gold", "n", "", "INVALID_ROW", "d"],
    ]  # fmt: skip
    assert unneutralize(rows[1][len(LEAD) + len(CORE) + 2]) == FORMULA


def test_failures_csv_when_nothing_failed_is_header_only(journal: Journal, tmp_path: Path) -> None:
    Rows(journal).add({"customer_id": "CUST000001"}, "valid", pairing(1))
    write_reports(journal, RUN, tmp_path, ["csv"], {})
    header = [*LEAD, *CORE, "error_code", "error_detail"]
    assert read_csv_rows(tmp_path / "failures.csv") == [header]
    assert (tmp_path / "failures.csv").read_bytes() == b"\xef\xbb\xbf" + ",".join(header).encode() + b"\r\n"


@pytest.mark.parametrize("status", ["created", "already_exists", "would_create", "valid"])
def test_success_statuses_are_not_failures(journal: Journal, tmp_path: Path, status: str) -> None:
    Rows(journal).add({"customer_id": "CUST000001"}, status, pairing(1))
    write_reports(journal, RUN, tmp_path, ["csv"], {})
    assert len(read_csv_rows(tmp_path / "failures.csv")) == 1


def test_failures_fed_back_overwrite_error_columns(journal: Journal, tmp_path: Path) -> None:
    rows = Rows(journal)
    # A failures.csv that was fed back: its own columns are among the original headers.
    rows.add(
        {"customer_id": "bad", "error_code": "OLD", "error_detail": "old detail", "source_row": "9"},
        "invalid",
        error_code="INVALID_ROW",
        error_detail="new detail",
    )
    rows.add(
        {"customer_id": "bad2", "Error Code": "OLD", "ERROR_DETAIL": "old", "Source File": "x"},
        "invalid",
        error_code="INVALID_ROW",
        error_detail="newer",
    )
    write_reports(journal, RUN, tmp_path, ["csv"], {})
    assert read_csv_rows(tmp_path / "failures.csv") == [
        [*LEAD, *CORE, "error_code", "error_detail"],
        ["in.csv", "", "2", "bad", *EMPTY_CORE[1:], "INVALID_ROW", "new detail"],
        ["in.csv", "", "3", "bad2", *EMPTY_CORE[1:], "INVALID_ROW", "newer"],
    ]


def test_formula_headers_are_neutralized_too(journal: Journal, tmp_path: Path) -> None:
    Rows(journal).add({"=cmd": "x"}, "invalid", error_code="INVALID_ROW", error_detail="d")
    write_reports(journal, RUN, tmp_path, ["csv"], {})
    assert read_csv_rows(tmp_path / "failures.csv")[0][len(LEAD) + len(CORE)] == "'=cmd"


# -- summary.json --------------------------------------------------------------------------------
def test_summary_json(journal: Journal, tmp_path: Path) -> None:
    summary = SUMMARY | {"message": "héllo", "started": Path("x")}
    write_reports(journal, RUN, tmp_path, ["csv"], summary)
    text = (tmp_path / "summary.json").read_text(encoding="utf-8")
    assert json.loads(text) == SUMMARY | {"message": "héllo", "started": "x"}
    assert "\n  " in text  # pretty


# -- atomic writes, reuse ------------------------------------------------------------------------
def test_existing_report_dir_is_reused(journal: Journal, tmp_path: Path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "results.csv").write_text("old")
    (out / "results.xlsx").write_text("stale workbook from an earlier xlsx run")
    (out / "notes.txt").write_text("mine")
    fill(journal)
    write_reports(journal, RUN, out, ["csv"], SUMMARY)
    assert len(read_csv(out / "results.csv")) == 5
    assert not (out / "results.xlsx").exists()  # it would disagree with results.csv
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == [
        "failures.csv",
        "notes.txt",
        "results.csv",
        "summary.json",
    ]


def test_a_failed_write_leaves_the_previous_report(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(journal)
    out = tmp_path / "r"
    write_reports(journal, RUN, out, ["csv", "xlsx"], SUMMARY)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(run_id: str, batch: int = 2000, **kwargs: Any) -> Iterator[Any]:
        yield from original(run_id, batch, **kwargs)
        raise OSError("disk full")

    original = journal.iter_rows
    monkeypatch.setattr(journal, "iter_rows", broken)
    with pytest.raises(OSError, match="disk full"):
        write_reports(journal, RUN, out, ["csv", "xlsx"], SUMMARY | {"rows_total": 99})
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert after == before  # same files, same bytes, no temporary files left


def test_no_temporary_files_are_left(journal: Journal, tmp_path: Path) -> None:
    fill(journal)
    out = tmp_path / "r"
    write_reports(journal, RUN, out, ["csv", "xlsx"], SUMMARY)
    assert sorted(p.name for p in out.iterdir()) == [
        "failures.csv",
        "results.csv",
        "results.xlsx",
        "summary.json",
    ]


def test_files_get_the_usual_permissions(journal: Journal, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_reports(journal, RUN, tmp_path / "r", ["csv"], {})
    finally:
        os.umask(old)
    assert (tmp_path / "r" / "results.csv").stat().st_mode & 0o777 == 0o644


def test_many_rows_stream_in_order(journal: Journal, tmp_path: Path) -> None:
    n = 5000
    journal.add_rows(
        RUN,
        [
            (
                i,
                "big.csv",
                "",
                i + 2,
                json.dumps({"Customer": f"C{i}"}),
                None,
                None,
                "invalid" if i % 7 == 0 else "valid",
                None,
                None,
            )
            for i in range(n)
        ],
    )
    write_reports(journal, RUN, tmp_path, ["csv"], {})
    results = read_csv(tmp_path / "results.csv")
    assert [int(r["row_number"]) for r in results] == list(range(2, n + 2))
    failures = read_csv(tmp_path / "failures.csv")
    assert [r["Customer"] for r in failures] == [f"C{i}" for i in range(0, n, 7)]


# -- results.xlsx --------------------------------------------------------------------------------
def test_results_xlsx(journal: Journal, tmp_path: Path) -> None:
    fill(journal)
    leading_zero = pairing(9, payment_source_id="0012345678").to_json()
    journal.add_rows(RUN, [(9, "in.csv", "", 11, "{}", None, leading_zero, "valid", None, None)])
    write_reports(journal, RUN, tmp_path, ["csv", "xlsx"], SUMMARY)
    path = tmp_path / "results.xlsx"
    assert xlsx_sheet_names(path) == ["Results", "Summary"]
    assert xlsx_frozen_at(path, "Results") == "A2"
    assert xlsx_autofilter(path, "Results") == "A1:P7"
    values = xlsx_values(path, "Results")
    assert tuple(values[0]) == REPORT_COLUMNS
    assert len(values) == 7
    csv_lines = read_csv(tmp_path / "results.csv")
    for line, row in zip(csv_lines, values[1:], strict=True):
        as_text = [str(int(v)) if isinstance(v, float) else v for v in row]
        # The CSV neutralizes (a leading '); the workbook holds the original text.
        assert as_text == [unneutralize(line[c]) for c in REPORT_COLUMNS]
    assert any(line["reference"].startswith("'") for line in csv_lines)
    first = dict(zip(REPORT_COLUMNS, values[1], strict=True))
    assert first["row_number"] == 2 and first["http_status"] == 201 and first["attempts"] == 1
    assert first["reference"] == "+33 6 12"  # the original value: a string cell is never a formula
    last = dict(zip(REPORT_COLUMNS, values[6], strict=True))
    assert last["payment_source_id"] == "0012345678"  # text, leading zeros kept
    # Numbers only in the numeric columns; everything else is text, and nothing is a formula.
    numeric_letters = {"ABCDEFGHIJKLMNO"[REPORT_COLUMNS.index(c)] for c in report.NUMERIC_COLUMNS}
    for ref, kind in xlsx_cell_kinds(path, "Results").items():
        assert kind == ("n" if ref[0] in numeric_letters and ref != f"{ref[0]}1" else "s"), ref
    summary = {r[0]: r[1] for r in xlsx_values(path, "Summary")}
    assert summary["run_id"] == RUN
    assert summary["counts.created"] == 2
    assert summary["rows_skipped_blank"] == 2
    assert summary["files[0].path"] == "in.csv"
    assert summary["files[0].sheets"] == "Sheet1"
    assert "f" not in xlsx_cell_kinds(path, "Summary").values()


def test_xlsx_continues_on_a_second_sheet_past_the_row_limit(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "XLSX_MAX_ROWS", 4)  # header + 3 rows per sheet
    fill(journal)
    write_reports(journal, RUN, tmp_path, ["xlsx", "csv"], SUMMARY)
    path = tmp_path / "results.xlsx"
    assert xlsx_sheet_names(path) == ["Results", "Results 2", "Summary"]
    assert len(xlsx_values(path, "Results")) == 4 and len(xlsx_values(path, "Results 2")) == 3
    assert xlsx_values(path, "Results 2")[0][0] == "source_file"
    assert xlsx_frozen_at(path, "Results 2") == "A2"
    assert xlsx_autofilter(path, "Results 2") == "A1:P3"


def test_summary_lines_flatten() -> None:
    assert summary_lines({"a": 1, "b": {"c": [1, 2]}, "d": [{"e": None}], "f": []}) == [
        ("a", 1),
        ("b.c", "1, 2"),
        ("d[0].e", None),
        ("f", ""),
    ]


# -- print_summary -------------------------------------------------------------------------------
def test_print_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    print_summary(SUMMARY, tmp_path / "reports" / RUN)
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # stdout is not a terminal: plain text
    assert re.search(r"created\s+2", out) and re.search(r"invalid\s+1", out)
    assert re.search(r"rows_total\s+5", out) and re.search(r"rows_skipped_blank\s+2", out)
    assert "already_exists" not in out  # zero counts are left out
    assert f"report: {tmp_path / 'reports' / RUN}{os.sep}" in out
    assert RUN in out


def test_print_summary_of_a_minimal_summary(capsys: pytest.CaptureFixture[str]) -> None:
    print_summary({}, Path("[weird] dir"))
    out = capsys.readouterr().out
    assert "rows_total" in out and "report: [weird] dir" in out


# -- importer report (rebuild) -------------------------------------------------------------------
def settings_for(journal_path: Path, formats: list[str] | None = None) -> Settings:
    return Settings.model_validate(
        {"journal": {"path": str(journal_path)}, "report": {"formats": formats or ["csv"]}}
    )


def test_rebuild_missing_journal(tmp_path: Path) -> None:
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(PreflightError, match=f"journal {re.escape(str(missing))} not found"):
        rebuild_report(settings_for(missing), journal_path=None, run_id=None, report_dir=None)
    assert not missing.exists()


def test_rebuild_unknown_run_lists_the_latest(journal: Journal, tmp_path: Path) -> None:
    journal.start_run("20260102T000000Z-bbbbbb", command="run", target=TARGET, inputs_fingerprint="x")
    with pytest.raises(UsageError) as err:
        rebuild_report(Settings(), journal_path=journal.path, run_id="nope", report_dir=str(tmp_path / "r"))
    message = str(err.value)
    assert message.startswith(f"run nope is not in journal {journal.path}; the latest runs are: ")
    assert message.index("20260102T000000Z-bbbbbb") < message.index(RUN)


def test_rebuild_empty_journal(tmp_path: Path) -> None:
    Journal.open(tmp_path / "j.sqlite").close()
    with pytest.raises(UsageError, match="holds no runs yet"):
        rebuild_report(settings_for(tmp_path / "j.sqlite"), journal_path=None, run_id=None, report_dir=None)


def test_rebuild_uses_the_stored_summary(
    journal: Journal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(journal)
    journal.finish_run(RUN, "finished", SUMMARY)
    out = tmp_path / "again"
    assert (
        rebuild_report(
            settings_for(Path(journal.path), ["csv", "xlsx"]),
            journal_path=None,
            run_id=RUN,
            report_dir=str(out),
        )
        == 0
    )
    assert json.loads((out / "summary.json").read_text()) == SUMMARY
    assert [r["status"] for r in read_csv(out / "results.csv")] == [
        "created",
        "invalid",
        "failed",
        "duplicate_in_file",
        "already_exists",
    ]
    assert len(read_csv(out / "failures.csv")) == 3
    assert (out / "results.xlsx").is_file()
    assert "report: " in capsys.readouterr().out


def test_rebuild_newest_run_without_summary(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(journal)
    newer = "20260103T000000Z-cccccc"
    journal.start_run(newer, command="run", target=TARGET, inputs_fingerprint="fp2")
    rows = Rows(journal, newer)
    rows.add({"Customer": "CUST000007"}, "sending", pairing(7))  # killed mid-request
    rows.add({"Customer": "CUST000008"}, "created", pairing(8))
    monkeypatch.chdir(tmp_path)
    assert rebuild_report(Settings(), journal_path=journal.path, run_id=None, report_dir=None) == 0
    out = tmp_path / "reports" / newer
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rebuilt_from_journal"] is True
    assert summary["run_id"] == newer and summary["run_state"] == "running"
    assert summary["rows_total"] == 2
    assert summary["counts"]["not_attempted"] == 1 and summary["counts"]["created"] == 1
    assert set(summary["counts"]) == {s.value for s in statuses_for("run")}
    assert [r["status"] for r in read_csv(out / "results.csv")] == ["not_attempted", "created"]


def test_rebuild_report_dir_not_writable(journal: Journal, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PreflightError, match="is not writable"):
        rebuild_report(Settings(), journal_path=journal.path, run_id=RUN, report_dir=str(blocker / "r"))


def test_importer_report_command(
    journal: Journal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from importer.cli import main

    fill(journal)
    journal.finish_run(RUN, "finished", SUMMARY)
    out = tmp_path / "cli-out"
    code = main(
        [
            "report",
            "--journal",
            journal.path,
            "--run-id",
            RUN,
            "--report-dir",
            str(out),
            "--log-format",
            "json",
        ]
    )
    assert code == 0
    assert len(read_csv(out / "results.csv")) == 5
    captured = capsys.readouterr()
    assert "report: " in captured.out
    events = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["report.rebuilt"]
    assert events[0]["run_id"] == RUN


def test_importer_report_errors_exit_2(
    journal: Journal, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from importer.cli import main

    missing = str(tmp_path / "missing.sqlite")
    assert main(["report", "--journal", missing, "--log-format", "json"]) == 2
    assert f"importer: error: journal {missing} not found" in error_message(capsys.readouterr().err)
    assert main(["report", "--journal", journal.path, "--run-id", "nope", "--log-format", "json"]) == 2
    assert f"the latest runs are: {RUN} (run, running, " in capsys.readouterr().err


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(cells=st.lists(_TEXT, min_size=1, max_size=4))
def test_any_text_survives_failures_csv(cells: list[str]) -> None:
    """What failures.csv holds, un-neutralized as the loader does, is exactly what came in."""
    import tempfile

    raw = {f"h{i}": v for i, v in enumerate(cells)}
    with tempfile.TemporaryDirectory() as tmp:
        j = Journal.open(Path(tmp) / "j.sqlite")
        try:
            j.start_run(RUN, command="run", target=TARGET, inputs_fingerprint="fp")
            Rows(j).add(raw, "invalid", error_code="INVALID_ROW", error_detail=cells[0])
            write_reports(j, RUN, Path(tmp) / "r", ["csv"], {})
            header, line = read_csv_rows(Path(tmp) / "r" / "failures.csv")
        finally:
            j.close()
    assert header == [*LEAD, *CORE, *raw, "error_code", "error_detail"]
    assert [unneutralize(c) for c in line] == [
        "in.csv",
        "",
        "2",
        *EMPTY_CORE,
        *cells,
        "INVALID_ROW",
        cells[0],
    ]
    assert not any(c[:1] in "=+-@\t\r" for c in line if c)  # nothing a spreadsheet would run


_text = st.one_of(st.none(), st.text(alphabet="=+-@\t\r' abc1é", max_size=6))


@given(
    pairing=st.one_of(
        st.none(),
        st.fixed_dictionaries(
            {"customer_id": _text, "payment_source_type": _text, "payment_source_id": _text},
            optional={"customer_email": _text, "payment_source_token": _text, "reference": _text},
        ),
    ),
    raw=st.dictionaries(st.sampled_from(["customer_id", "customer_email", "reference", "extra"]), _text),
    cells=st.tuples(_text, _text, _text, _text, _text),
    status=st.sampled_from(list(RowStatus)),
    numbers=st.tuples(st.integers(1, 10**6), st.one_of(st.none(), st.integers(100, 599)), st.integers(0, 9)),
)
@settings(max_examples=200, deadline=None)
def test_results_csv_cells_are_report_line_through_cell(
    pairing: dict[str, Any] | None,
    raw: dict[str, Any],
    cells: tuple[Any, ...],
    status: RowStatus,
    numbers: tuple[int, int | None, int],
) -> None:
    """The fast path that writes results.csv says exactly what report_line and _cell say."""
    from importer.journal import RowRecord

    source_file, cps_id, customer_id, error_detail, changed = cells
    record = RowRecord(
        seq=0,
        source_file=source_file or "in.csv",
        sheet="",
        row_number=numbers[0],
        raw_json=json.dumps(raw),
        status=status,
        pairing_json=json.dumps(pairing) if pairing is not None else None,
        customer_payment_source_id=cps_id,
        customer_id=customer_id,
        http_status=numbers[1],
        error_code="E" if numbers[2] else None,
        error_detail=error_detail,
        attempts=numbers[2],
        changed_fields=changed,
    )
    line = report.report_line(record)
    assert report.csv_cells(record) == [report._cell(line[c]) for c in REPORT_COLUMNS]
