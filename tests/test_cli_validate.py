"""`importer validate` end to end, in-process: exit codes, report files, logs, no leaked secret."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from helpers_files import (
    HEADER,
    cid,
    error_message,
    psid,
    read_csv,
    read_csv_rows,
    write_csv,
    write_xlsx,
    xlsx_autofilter,
    xlsx_frozen_at,
    xlsx_sheet_names,
    xlsx_values,
)

from importer.cli import main
from importer.columns import FAILURE_CORE_FIELDS, FAILURE_LEAD_COLUMNS
from importer.config import ENV_OVERRIDES
from importer.journal import REPORT_COLUMNS
from importer.neutralize import unneutralize

SECRET = "cl-secret-0123456789-never-print-me"
FORMULA = '=HYPERLINK("x")'
PHONE = "+33 6 12"
RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}")


@pytest.fixture(autouse=True)
def _clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Run in an empty folder (no ./config.yaml) with no CL_* variables from the machine."""
    monkeypatch.chdir(tmp_path)
    for var in ENV_OVERRIDES:
        monkeypatch.delenv(var, raising=False)
    yield
    structlog.reset_defaults()


FAILURES_LEAD = [*FAILURE_LEAD_COLUMNS, *FAILURE_CORE_FIELDS]


def validate(*args: str) -> int:
    return main(["validate", "--log-format", "json", *args])


def valid_row(n: int, reference: str = "") -> list[str]:
    return [cid(n), "", "stripe_payments", psid(n), reference]


def only_dir(parent: Path) -> Path:
    (child,) = parent.iterdir()
    return child


def log_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


# -- exit codes ------------------------------------------------------------------------------------
def test_all_valid_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(i) for i in range(3)])
    assert validate("in.csv", "--report-dir", "out") == 0
    results = read_csv(tmp_path / "out" / "results.csv")
    assert [r["status"] for r in results] == ["valid"] * 3
    assert [r["customer_id"] for r in results] == [cid(0), cid(1), cid(2)]
    assert read_csv_rows(tmp_path / "out" / "failures.csv") == [
        [*FAILURES_LEAD, "error_code", "error_detail"]
    ]
    out = capsys.readouterr().out
    assert re.search(r"valid\s+3", out) and f"report: out{'/'}" in out


def test_invalid_and_duplicate_rows_exit_1(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "in.csv", HEADER, [valid_row(0), ["123", "", "stripe_payments", psid(1), ""], valid_row(0)]
    )
    assert validate("in.csv", "--report-dir", "out") == 1
    assert [r["status"] for r in read_csv(tmp_path / "out" / "results.csv")] == [
        "valid",
        "invalid",
        "duplicate_in_file",
    ]


def test_only_duplicates_exit_1(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0), valid_row(0)])
    assert validate("in.csv", "--report-dir", "out") == 1


def test_missing_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert validate("nope.csv") == 2
    err = error_message(capsys.readouterr().err)
    assert "importer: error: nope.csv: does not exist" in err
    assert not Path("reports").exists() or not any(Path("reports").rglob("results.csv"))


def test_unreadable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.xlsx").write_bytes(b"this is not a workbook at all")
    assert validate("broken.xlsx", "--report-dir", "out") == 2
    assert "importer: error: broken.xlsx: " in error_message(capsys.readouterr().err)


def test_binary_csv_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.csv").write_bytes(b"\x00\x01\x02\xff\xfe" * 50)
    assert validate("in.csv", "--report-dir", "out") == 2
    assert "importer: error: in.csv: " in error_message(capsys.readouterr().err)


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0)])
    (tmp_path / "cfg.yaml").write_text("concurency: 4\n")
    assert validate("in.csv", "-c", "cfg.yaml") == 2
    err = error_message(capsys.readouterr().err)
    assert "importer: error: config key concurency: unknown key" in err
    assert not Path("reports").exists()


def test_impossible_config_value_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0)])
    (tmp_path / "config.yaml").write_text("max_invalid_ratio: 2\n")  # found in the current folder
    assert validate("in.csv") == 2
    assert "config key max_invalid_ratio" in capsys.readouterr().err


def test_missing_required_columns_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(tmp_path / "in.csv", ["Name", "Notes"], [["Ann", "x"]])
    assert validate("in.csv", "--report-dir", "out") == 2
    err = error_message(capsys.readouterr().err)
    assert "importer: error: in.csv: missing required columns" in err
    assert "'Name', 'Notes'" in err
    # No report was written, so the folder made for it is gone; one that was there stays.
    assert not (tmp_path / "out").exists()
    assert validate("in.csv", "--report-dir", "reports/run-1") == 2
    assert not (tmp_path / "reports").exists()
    (tmp_path / "mine").mkdir()
    assert validate("in.csv", "--report-dir", "mine") == 2
    assert (tmp_path / "mine").is_dir()


def test_bad_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate"]) == 2
    assert main(["validate", "x.csv", "--log-format", "xml"]) == 2
    capsys.readouterr()


def test_too_many_invalid_rows_exits_2_and_still_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ["123", "", "stripe_payments", psid(9), ""]
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0), bad, [*bad[:3], psid(8), ""]])
    (tmp_path / "cfg.yaml").write_text("max_invalid_ratio: 0.5\n")
    assert validate("in.csv", "-c", "cfg.yaml", "--report-dir", "out") == 2
    captured = capsys.readouterr()
    message = "2 of 3 rows are invalid (67%), more than max_invalid_ratio 50%: `run` would send nothing"
    assert message in captured.err
    out = tmp_path / "out"
    # validate only ever reports valid, invalid and duplicate_in_file: the good row stays valid.
    statuses = [r["status"] for r in read_csv(out / "results.csv")]
    assert statuses == ["valid", "invalid", "invalid"]
    assert len(read_csv(out / "failures.csv")) == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["invalid"] == 2 and summary["counts"]["not_attempted"] == 0
    assert summary["counts"]["valid"] == 1
    assert message in summary["message"]


def test_invalid_ratio_at_the_limit_is_allowed(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0), ["123", "", "stripe_payments", psid(1), ""]])
    (tmp_path / "cfg.yaml").write_text("max_invalid_ratio: 0.5\n")
    assert validate("in.csv", "-c", "cfg.yaml", "--report-dir", "out") == 1


# -- the report ------------------------------------------------------------------------------------
def two_inputs(tmp_path: Path) -> None:
    """a.csv, then b.xlsx with sheets Jan and Feb (and a notes sheet without the columns)."""
    write_csv(
        tmp_path / "a.csv",
        HEADER,
        [valid_row(0), ["bad", "", "stripe_payments", psid(1), ""], valid_row(2)],
    )
    write_xlsx(
        tmp_path / "b.xlsx",
        {
            "Jan": [list(HEADER), valid_row(3), valid_row(0), [], valid_row(4)],  # row 3 repeats a.csv row 2
            "Notes": [["just", "some notes"]],
            "Feb": [
                list(HEADER),
                valid_row(5),
                ["", "not-an-email", "stripe_payments", psid(6), ""],
                valid_row(3),
            ],
        },
    )


def test_rows_in_equal_rows_out_in_input_order(tmp_path: Path) -> None:
    two_inputs(tmp_path)
    assert validate("a.csv", "b.xlsx", "--report-dir", "out") == 1
    out = tmp_path / "out"
    assert tuple(read_csv_rows(out / "results.csv")[0]) == REPORT_COLUMNS
    results = read_csv(out / "results.csv")
    where = [(r["source_file"], r["sheet"], r["row_number"], r["status"]) for r in results]
    assert where == [
        ("a.csv", "", "2", "valid"),
        ("a.csv", "", "3", "invalid"),
        ("a.csv", "", "4", "valid"),
        ("b.xlsx", "Jan", "2", "valid"),
        ("b.xlsx", "Jan", "3", "duplicate_in_file"),
        ("b.xlsx", "Jan", "5", "valid"),  # the blank row 4 keeps its number
        ("b.xlsx", "Feb", "2", "valid"),
        ("b.xlsx", "Feb", "3", "invalid"),
        ("b.xlsx", "Feb", "4", "duplicate_in_file"),
    ]
    assert results[4]["error_detail"] == "same pairing as a.csv row 2"
    assert results[8]["error_detail"] == "same pairing as b.xlsx [Jan] row 2"
    assert results[4]["error_code"] == "DUPLICATE_IN_FILE" and results[1]["error_code"] == "INVALID_ROW"
    assert "'bad' is not a valid id" in results[1]["error_detail"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows_total"] == 9
    assert summary["rows_skipped_blank"] == 1
    assert summary["counts"] == {
        "created": 0,
        "already_exists": 0,
        "would_create": 0,
        "valid": 5,
        "invalid": 2,
        "duplicate_in_file": 2,
        "failed": 0,
        "not_attempted": 0,
    }
    b = summary["files"][1]
    assert b["path"] == "b.xlsx" and b["sheets"] == ["Jan", "Feb"] and b["sheets_skipped"] == ["Notes"]
    assert len(b["sha256"]) == 64
    assert (b["header_rows"], b["totals_rows"], b["hidden_rows"]) == ([1, 1], [], 0)


def test_summary_json_keys(tmp_path: Path) -> None:
    two_inputs(tmp_path)
    validate("a.csv", "b.xlsx", "--report-dir", "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for key in (
        "counts",
        "rows_total",
        "rows_skipped_blank",
        "files",
        "started_at",
        "finished_at",
        "duration_s",
        "importer_version",
        "run_id",
        "config_fingerprint",
    ):
        assert key in summary, key
    assert RUN_ID.fullmatch(summary["run_id"])
    assert summary["command"] == "validate"
    assert summary["importer_version"] == "0.1.0"
    assert summary["started_at"] <= summary["finished_at"]
    assert summary["duration_s"] >= 0
    import hashlib

    assert summary["files"][0]["sha256"] == hashlib.sha256((tmp_path / "a.csv").read_bytes()).hexdigest()
    assert [f["path"] for f in summary["files"]] == ["a.csv", "b.xlsx"]


def test_failures_csv_feeds_back_with_original_values(tmp_path: Path) -> None:
    header = [*HEADER, "Notes", "metadata.team"]
    rows = [
        [cid(0), "", "stripe_payments", psid(0), PHONE, FORMULA, "emea"],  # valid
        ["bad", "", "stripe_payments", psid(1), FORMULA, PHONE, "-1"],  # invalid
        [cid(2), "", "bitcoin", psid(2), "@ref", "  ", "=1+1"],  # invalid
        [cid(0), "", "stripe_payments", psid(0), "", "dup", ""],  # duplicate
    ]
    write_csv(tmp_path / "in.csv", header, rows)
    assert validate("in.csv", "--report-dir", "first") == 1
    first = tmp_path / "first"
    results = read_csv(first / "results.csv")
    assert results[0]["reference"] == "'" + PHONE  # neutralized in results.csv too
    failures = read_csv_rows(first / "failures.csv")
    # Where each row came from, one column per field under its canonical name (reference and
    # metadata.team after the core fields), the other columns, then why.
    columns = [*FAILURES_LEAD, "reference", "metadata.team", "Notes", "error_code", "error_detail"]
    assert failures[0] == columns
    values = [{c: v for c, v in zip(columns, line, strict=True) if v} for line in failures[1:]]
    assert values[0] == {
        "source_file": "in.csv",
        "source_row": "3",
        "customer_id": "bad",
        "payment_source_type": "stripe_payments",
        "payment_source_id": psid(1),
        "reference": "'" + FORMULA,
        "Notes": "'" + PHONE,
        "metadata.team": "'-1",
        "error_code": "INVALID_ROW",
        "error_detail": values[0]["error_detail"],
    }
    assert [v["source_row"] for v in values] == ["3", "4", "5"]
    assert [v.get("Notes") for v in values] == ["'" + PHONE, None, "dup"]
    assert values[1]["metadata.team"] == "'=1+1" and values[1]["reference"] == "'@ref"
    assert [v["error_code"] for v in values] == ["INVALID_ROW", "INVALID_ROW", "DUPLICATE_IN_FILE"]

    # Fed back as it is: the loader ignores the error columns and undoes the neutralizing.
    (tmp_path / "cfg.yaml").write_text("max_invalid_ratio: 1\n")  # a failures file is mostly invalid
    assert validate("first/failures.csv", "-c", "cfg.yaml", "--report-dir", "second") == 1
    second = tmp_path / "second"
    again = read_csv_rows(second / "failures.csv")
    assert again[0] == columns  # the report's own columns replaced, not doubled
    assert [[unneutralize(c) for c in line[3:-2]] for line in again[1:3]] == [
        [unneutralize(c) for c in line[3:-2]] for line in failures[1:3]
    ]
    # Byte for byte the same cells and errors (the source_* columns are the loader's side of
    # the contract: it points a re-fed row at its original file and row).
    assert [line[3:] for line in again[1:3]] == [line[3:] for line in failures[1:3]]
    # The duplicate's first occurrence is not in failures.csv, so fed back alone it is valid.
    statuses = [r["status"] for r in read_csv(second / "results.csv")]
    assert statuses == ["invalid", "invalid", "valid"]


def test_report_dir_is_reused(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0), ["bad", "", "stripe_payments", psid(1), ""]])
    assert validate("in.csv", "--report-dir", "out") == 1
    first_id = json.loads((tmp_path / "out" / "summary.json").read_text())["run_id"]
    (tmp_path / "out" / "mine.txt").write_text("keep")
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0)])
    assert validate("in.csv", "--report-dir", "out") == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["run_id"] != first_id
    assert len(read_csv(tmp_path / "out" / "results.csv")) == 1
    assert read_csv(tmp_path / "out" / "failures.csv") == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "failures.csv",
        "mine.txt",
        "results.csv",
        "summary.json",
    ]


def test_default_report_dir_is_reports_run_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0)])
    assert validate("in.csv") == 0
    run_dir = only_dir(tmp_path / "reports")
    assert RUN_ID.fullmatch(run_dir.name)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run_id"] == run_dir.name
    assert f"report: reports/{run_dir.name}/" in capsys.readouterr().out


def test_results_xlsx(tmp_path: Path) -> None:
    two_inputs(tmp_path)
    (tmp_path / "cfg.yaml").write_text("report:\n  formats: [csv, xlsx]\n")
    assert validate("a.csv", "b.xlsx", "-c", "cfg.yaml", "--report-dir", "out") == 1
    path = tmp_path / "out" / "results.xlsx"
    assert xlsx_sheet_names(path) == ["Results", "Summary"]
    assert xlsx_frozen_at(path, "Results") == "A2"
    assert xlsx_autofilter(path, "Results") == "A1:P10"
    rows = xlsx_values(path, "Results")
    assert tuple(rows[0]) == REPORT_COLUMNS
    assert [r[3] for r in rows[1:]] == [r["status"] for r in read_csv(tmp_path / "out" / "results.csv")]
    assert rows[1][2] == 2  # row_number is a number
    summary = {r[0]: r[1] for r in xlsx_values(path, "Summary")}
    assert summary["counts.valid"] == 5 and summary["rows_total"] == 9
    assert RUN_ID.fullmatch(str(summary["run_id"]))
    import pandas as pd

    frame = pd.read_excel(path, sheet_name="Results", dtype=str, keep_default_na=False, engine="calamine")
    assert list(frame.columns) == list(REPORT_COLUMNS)
    assert len(frame) == 9


def test_csv_only_by_default(tmp_path: Path) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0)])
    validate("in.csv", "--report-dir", "out")
    assert not (tmp_path / "out" / "results.xlsx").exists()


# -- logs and secrets --------------------------------------------------------------------------------
def test_json_log_lines_carry_the_run_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0)])
    assert validate("in.csv", "--report-dir", "out") == 0
    run_id = json.loads((tmp_path / "out" / "summary.json").read_text())["run_id"]
    err = capsys.readouterr().err
    lines = log_lines(err)
    assert len(lines) == len(err.splitlines())  # nothing but JSON lines on stderr
    events = [line["event"] for line in lines]
    assert events[0] == "run.start" and events[-1] == "run.finish"
    assert all(line["run_id"] == run_id for line in lines)
    assert all({"level", "timestamp"} <= set(line) for line in lines)
    assert lines[-1]["exit_code"] == 0


def test_sheet_skipped_is_logged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two_inputs(tmp_path)
    validate("a.csv", "b.xlsx", "--report-dir", "out")
    skipped = [line for line in log_lines(capsys.readouterr().err) if line["event"] == "input.sheet_skipped"]
    assert [(s["sheet"], s["level"]) for s in skipped] == [("Notes", "warning")]


def test_secret_never_appears_anywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CL_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("CL_CLIENT_ID", "client-id")
    two_inputs(tmp_path)
    (tmp_path / "cfg.yaml").write_text("report:\n  formats: [csv, xlsx]\n")
    assert validate("a.csv", "b.xlsx", "-c", "cfg.yaml", "--report-dir", "out", "-vv") == 1
    captured = capsys.readouterr()
    assert SECRET not in captured.out and SECRET not in captured.err
    config = next(line for line in log_lines(captured.err) if line["event"] == "run.config")  # -vv only
    assert config["config"]["commercelayer"]["client_secret"] == "***"
    for path in (tmp_path / "out").iterdir():
        assert SECRET.encode() not in path.read_bytes(), path.name
    import zipfile

    with zipfile.ZipFile(tmp_path / "out" / "results.xlsx") as book:
        for name in book.namelist():
            assert SECRET.encode() not in book.read(name), name


def test_literal_secret_in_readable_config_is_warned_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0)])
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"commercelayer:\n  client_secret: {SECRET}\n")
    cfg.chmod(0o644)
    assert validate("in.csv", "-c", "cfg.yaml", "--report-dir", "out") == 0
    captured = capsys.readouterr()
    warnings = [line for line in log_lines(captured.err) if line["event"] == "config.warning"]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert SECRET not in captured.err and SECRET not in captured.out
    for path in (tmp_path / "out").iterdir():
        assert SECRET.encode() not in path.read_bytes()


# -- issue 9: reading flags --------------------------------------------------------------------------


def test_header_row_flag_and_config_key_name_the_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [valid_row(0)]
    (tmp_path / "in.csv").write_text(
        "Exported 2024-05-01,,,,\n" + ",".join(HEADER) + "\n" + "\n".join(",".join(r) for r in rows) + "\n"
    )
    assert validate("in.csv", "--report-dir", "found") == 0
    found = [e for e in log_lines(capsys.readouterr().err) if e["event"] == "input.header_row"]
    assert [e["row"] for e in found] == [2]
    results = read_csv(tmp_path / "found" / "results.csv")
    assert [(r["row_number"], r["status"]) for r in results] == [("3", "valid")]
    # Row 1 as the header: its "columns" are not the required ones, so exit 2 naming them.
    assert validate("in.csv", "--header-row", "1", "--report-dir", "one") == 2
    assert "missing required columns" in capsys.readouterr().err
    (tmp_path / "cfg.yaml").write_text("header_row: 1\n")
    assert validate("in.csv", "-c", "cfg.yaml", "--report-dir", "cfg") == 2
    # The flag wins over the config key.
    assert validate("in.csv", "-c", "cfg.yaml", "--header-row", "2", "--report-dir", "flag") == 0


def test_sheet_on_a_csv_exits_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_csv(tmp_path / "in.csv", HEADER, [valid_row(0)])
    assert validate("in.csv", "--sheet", "Data", "--report-dir", "out") == 2
    assert "in.csv: is a CSV/text file, which has no sheets, but --sheet was given" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before a report folder is left behind


def test_a_fed_back_report_points_at_the_original_rows_and_keeps_a_typed_apostrophe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9: a raw `'-5 promo` is kept; re-fed failures.csv rows keep their file/sheet/row."""
    rows = [
        [cid(1), "", "stripe_payments", psid(1), "'-5 promo"],
        ["short", "", "stripe_payments", psid(2), "'-5 promo"],  # row 3: invalid id
    ]
    write_xlsx(tmp_path / "book.xlsx", {"Q4": [HEADER, *rows]})
    assert validate("book.xlsx", "--report-dir", "first") == 1  # one of two rows invalid
    first = read_csv(tmp_path / "first" / "results.csv")
    assert first[0]["reference"] == "''-5 promo"  # the CSV guard on top of the typed apostrophe
    assert [
        (f["source_file"], f["source_sheet"], f["source_row"])
        for f in read_csv(tmp_path / "first" / "failures.csv")
    ] == [("book.xlsx", "Q4", "3")]
    assert validate("first/failures.csv", "--report-dir", "second") == 2
    again = read_csv(tmp_path / "second" / "results.csv")
    assert [(r["source_file"], r["sheet"], r["row_number"], r["status"]) for r in again] == [
        ("book.xlsx", "Q4", "3", "invalid")
    ]
    assert again[0]["reference"] == "''-5 promo"  # still `'-5 promo`, not `-5 promo`
    line = read_csv(tmp_path / "second" / "failures.csv")[0]
    assert (line["source_file"], line["source_sheet"], line["source_row"]) == ("book.xlsx", "Q4", "3")
    capsys.readouterr()
