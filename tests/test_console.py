"""What a person (or a log reader) sees: problems grouped by kind, JSON-only stderr in JSON mode,
-v versus -vv, the header-only warning, and the progress line during a rate-window wait.
`main(argv)` in-process; runs go to a sandbox on 127.0.0.1 over real HTTP."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import api_of, cli, write_config
from helpers_files import HEADER, cid, psid
from run_helpers import sandbox_thread, write_csv

from importer.problems import ProblemTally, kind_label
from importer.progress import RunProgress
from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    yield


def events(err: str) -> list[dict[str, Any]]:
    """Every stderr line as JSON; fails on a line that is not (JSON mode writes only JSON)."""
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def _bad_file(path: Path) -> Path:
    return write_csv(
        path,
        list(HEADER),
        [
            ["", "not-an-email", "stripe_payments", psid(1), ""],  # row 2
            [cid(2), "", "stripe_payments", psid(2), ""],  # row 3: valid
            ["", "still@bad", "stripe_payments", psid(3), ""],  # row 4
            ["", "x@y", "stripe_payments", psid(4), ""],  # row 5
            [cid(5), "", "bitcoin", psid(5), ""],  # row 6
            [cid(6), "", "stripe_payments", psid(6), ""],  # row 7: valid
            [cid(7), "", "bitcoin", psid(7), ""],  # row 8
            [cid(2), "", "stripe_payments", psid(2), ""],  # row 9: duplicate of row 3
            [cid(8), "", "stripe_payments", psid(8), ""],  # row 10: valid
        ],
    )


# -- grouping ---------------------------------------------------------------------------------------
def test_validate_lists_problems_grouped_by_kind_then_the_failures_csv(tmp_path: Path) -> None:
    _bad_file(tmp_path / "in.csv")
    (tmp_path / "cfg.yaml").write_text("max_invalid_ratio: 1\n")
    out = cli(["validate", "in.csv", "-c", "cfg.yaml", "--report-dir", "out", "--log-format", "json"])
    assert out.code == 1
    lines = out.out.splitlines()
    start = lines.index("problems:")
    problems = [line.strip() for line in lines[start + 1 : start + 4]]
    assert problems[0].startswith("3 rows: invalid: column 'customer_email': … is not an email address")
    assert problems[0].endswith("(rows 2, 4, 5)")
    assert problems[1].startswith(
        "2 rows: invalid: column 'payment_source_type': … is not a payment source type"
    )
    assert problems[1].endswith("(rows 6, 8)")
    assert problems[2] == (
        "1 row: duplicate_in_file: DUPLICATE_IN_FILE: same pairing as an earlier row (row 9)"
    )
    assert lines[start + 4] == f"fix them in: {Path('out') / 'failures.csv'}"
    # The same groups in the log, for a scheduler.
    (event,) = [e for e in events(out.err) if e["event"] == "report.problems"]
    assert event["rows"] == 6 and event["kinds"][0]["rows"] == 3
    assert [r["row"] for r in event["kinds"][0]["first_rows"]] == [2, 4, 5]


def test_more_rows_than_shown_end_with_an_ellipsis_and_files_are_named() -> None:
    tally = ProblemTally()
    for n in range(2, 10):
        tally.add(
            "failed",
            "CUSTOMER_NOT_FOUND",
            f"no customer with e-mail u{n}@x.io in this organization",
            ("a.csv", "", n),
        )
    tally.add(
        "failed",
        "CUSTOMER_NOT_FOUND",
        "no customer with e-mail z@x.io in this organization",
        ("b.xlsx", "S", 4),
    )
    (line,) = tally.lines()
    assert line == (
        "9 rows: failed: CUSTOMER_NOT_FOUND: no customer with e-mail … in this organization "
        "(a.csv row 2, a.csv row 3, a.csv row 4, a.csv row 5, a.csv row 6, …)"
    )
    assert (
        kind_label("failed", None, "same pairing as a.csv [Q1] row 12")
        == "failed: same pairing as an earlier row"
    )


def test_run_groups_a_missing_payment_source(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    rows = [[s.customer_id, s.type, s.id] for s in data.sources[:6]]
    for i in (1, 3, 4):
        rows[i] = [rows[i][0], "stripe_payments", f"NoSuchId0{i}"]
    write_csv(tmp_path / "in.csv", ["customer_id", "payment_source_type", "payment_source_id"], rows)
    with sandbox_thread() as sb:
        config = write_config(tmp_path / "config.yaml", api_of(sb), tmp_path / "j.sqlite")
        out = cli(
            ["run", "in.csv", "-c", str(config), "--report-dir", "rep", "--dry-run", "--log-format", "json"]
        )
    assert out.code == 1, out.err[-2000:]
    assert (
        "3 rows: failed: PAYMENT_SOURCE_NOT_FOUND: payment_source_id not found: no stripe_payments "
        "with id … in this organization, so the real run would fail this row; correct the id "
        "(or the type) (rows 3, 5, 6)"
    ) in out.out
    assert f"fix them in: {Path('rep') / 'failures.csv'}" in out.out


def test_rows_a_refused_run_did_not_send_are_not_called_rows_to_fix(tmp_path: Path) -> None:
    """Rejected credentials stop the run before any row is sent: nothing in the rows is wrong,
    so the console must not tell the person to fix them, only to run again."""
    data = generate(DEMO_SEED, 20)
    rows = [[s.customer_id, s.type, s.id] for s in data.sources[:3]]
    write_csv(tmp_path / "in.csv", ["customer_id", "payment_source_type", "payment_source_id"], rows)
    with sandbox_thread() as sb:
        api = dataclasses.replace(api_of(sb), client_secret="wrong")
        config = write_config(tmp_path / "config.yaml", api, tmp_path / "j.sqlite")
        out = cli(["run", "in.csv", "-c", str(config), "--report-dir", "rep", "--log-format", "json"])
    assert out.code == 3, out.err[-2000:]
    assert "3 rows: not_attempted: not sent: run aborted (rows 2, 3, 4)" in out.out
    assert f"not sent; run again to send them. They are in: {Path('rep') / 'failures.csv'}" in out.out
    assert "fix them in" not in out.out


# -- JSON mode, verbosity -------------------------------------------------------------------------
def test_json_mode_writes_only_json_lines_to_stderr(tmp_path: Path) -> None:
    _bad_file(tmp_path / "in.csv")
    (tmp_path / "cfg.yaml").write_text("max_invalid_ratio: 0.1\n")
    too_many = cli(["validate", "in.csv", "-c", "cfg.yaml", "--report-dir", "out", "--log-format", "json"])
    assert too_many.code == 2
    logged = events(too_many.err)  # raises on any plain-text line
    (message,) = [e for e in logged if e["event"] == "run.message"]
    assert "more than max_invalid_ratio 10%" in message["message"] and message["exit_code"] == 2
    missing = cli(["validate", "nope.csv", "--log-format", "json"])
    assert missing.code == 2
    (error,) = [e for e in events(missing.err) if e["event"] == "run.error"]
    assert "nope.csv" in error["error"]
    # The console format still says it in plain words.
    plain = cli(["validate", "nope.csv", "--log-format", "console"])
    assert "importer: error: nope.csv: does not exist" in plain.err


def test_no_config_dump_by_default_and_v_differs_from_vv(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    rows = [[s.customer_id, s.type, s.id] for s in data.sources[:3]]
    write_csv(tmp_path / "in.csv", ["customer_id", "payment_source_type", "payment_source_id"], rows)
    runs = {}
    with sandbox_thread() as sb:
        for flag in ("", "-v", "-vv"):  # a journal each: every run creates its rows afresh
            sb.reset()
            config = write_config(tmp_path / f"c{flag}.yaml", api_of(sb), tmp_path / f"j{flag}.sqlite")
            argv = ["run", "in.csv", "-c", str(config), "--report-dir", f"rep{flag}", "--log-format", "json"]
            runs[flag] = cli(argv + ([flag] if flag else []))
    names = {flag: [e["event"] for e in events(r.err)] for flag, r in runs.items()}
    assert all(r.code == 0 for r in runs.values())
    # Default: run-level events only, no config and no per-row or per-request lines.
    assert "run.start" in names[""] and "run.finish" in names[""]
    assert not {"run.config", "api.answer", "row.created"} & set(names[""])
    assert all("config" not in e for e in events(runs[""].err))
    # -v: one event per row, naming the file, sheet and row; still no requests, no config.
    created = [e for e in events(runs["-v"].err) if e["event"] == "row.created"]
    assert [(e["file"], e["sheet"], e["row"]) for e in created] == [
        ("in.csv", "", 2),
        ("in.csv", "", 3),
        ("in.csv", "", 4),
    ]
    assert all(e["customer_payment_source_id"] for e in created)
    assert not {"run.config", "api.answer"} & set(names["-v"])
    # -vv: debug too: every API answer and the (redacted) config.
    assert "api.answer" in names["-vv"] and "run.config" in names["-vv"]
    assert "row.created" in names["-vv"]
    assert all(e["level"] != "debug" for e in events(runs["-v"].err))


def test_validate_v_names_every_row(tmp_path: Path) -> None:
    _bad_file(tmp_path / "in.csv")
    (tmp_path / "cfg.yaml").write_text("max_invalid_ratio: 1\n")
    out = cli(["validate", "in.csv", "-c", "cfg.yaml", "--report-dir", "out", "--log-format", "json", "-v"])
    per_row = [e for e in events(out.err) if e["event"].startswith("row.")]
    assert [(e["event"], e["row"]) for e in per_row][:3] == [
        ("row.invalid", 2),
        ("row.valid", 3),
        ("row.invalid", 4),
    ]
    assert {e["file"] for e in per_row} == {"in.csv"} and "seq" not in per_row[0]
    assert [e["event"] for e in per_row].count("row.duplicate_in_file") == 1


# -- header-only file -----------------------------------------------------------------------------
def test_a_header_only_file_gets_a_warning_naming_it(tmp_path: Path) -> None:
    write_csv(tmp_path / "empty.csv", list(HEADER), [])
    write_csv(tmp_path / "full.csv", list(HEADER), [[cid(1), "", "stripe_payments", psid(1), ""]])
    out = cli(["validate", "empty.csv", "full.csv", "--report-dir", "out", "--log-format", "json"])
    assert out.code == 0
    warnings = [e for e in events(out.err) if e["event"] == "input.no_data_rows"]
    assert [w["file"] for w in warnings] == ["empty.csv"]
    assert warnings[0]["level"] == "warning"
    assert "empty.csv has a header but no data rows" in warnings[0]["detail"]


# -- the progress line ----------------------------------------------------------------------------
def test_the_progress_line_says_it_waits_for_a_rate_window_with_the_time_left() -> None:
    now = [100.0]
    progress = RunProgress(10, interval_s=30, bar=False, clock=lambda: now[0])
    assert progress.note() == ""
    progress.on_wait(4.0)
    assert progress.note() == "waiting for a rate window, 4.0 s left"
    assert progress.snapshot()["waiting_for_window_s"] == 4.0
    now[0] += 2.5
    assert progress.note() == "waiting for a rate window, 1.5 s left"
    now[0] += 2.0
    assert progress.note() == "" and progress.snapshot()["waiting_for_window_s"] == 0.0
    progress.on_pause(5.0)
    assert progress.note() == "paused (429), 5.0 s left"
    now[0] += 6.0
    assert progress.note() == "paused (429)"  # until the probe gets through


def test_a_throttled_run_reports_its_window_waits(tmp_path: Path) -> None:
    """Over HTTP: a burst of 2 per window makes later rows wait; the progress events say so."""
    data = generate(DEMO_SEED, 20)
    rows = [[s.customer_id, s.type, s.id] for s in data.sources[:6]]
    write_csv(tmp_path / "in.csv", ["customer_id", "payment_source_type", "payment_source_id"], rows)
    with sandbox_thread() as sb:
        config = write_config(
            tmp_path / "config.yaml",
            api_of(sb),
            tmp_path / "j.sqlite",
            rate_limit={"burst": 2, "burst_window_s": 0.6, "average": 100, "average_window_s": 6},
            progress_interval_s=0.2,
        )
        out = cli(["run", "in.csv", "-c", str(config), "--report-dir", "rep", "--log-format", "json"])
    assert out.code == 0, out.err[-2000:]
    progress = [e for e in events(out.err) if e["event"] == "run.progress"]
    assert progress and any(e["waiting_for_window_s"] > 0 for e in progress)


def test_verbosity_levels() -> None:
    import logging

    from importer.log import configure_logging, level_for, row_events

    assert [level_for(v, 0) for v in (0, 1, 2, 3)] == [
        logging.INFO,
        logging.INFO,
        logging.DEBUG,
        logging.DEBUG,
    ]
    assert level_for(2, 1) == logging.WARNING and level_for(0, 2) == logging.ERROR
    try:
        configure_logging("json", level_for(1, 0), verbose=1)
        assert row_events()
        configure_logging("json", level_for(0, 0), verbose=0)
        assert not row_events()
        configure_logging("json", level_for(1, 1), verbose=1)  # -v -q: quiet wins
        assert not row_events()
    finally:
        configure_logging("json")


def test_no_progress_bar_in_json_mode_even_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import io

    from importer.commands import show_progress_bar
    from importer.log import configure_logging

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    args = argparse.Namespace(quiet=0)
    try:
        configure_logging("console")
        assert show_progress_bar(args)
        configure_logging("json")
        assert not show_progress_bar(args)
        configure_logging("console")
        assert not show_progress_bar(argparse.Namespace(quiet=1))
    finally:
        configure_logging("json")


def test_taking_a_rows_values_out_first_gives_the_same_kinds() -> None:
    """The fast path (the row's quoted values replaced by plain string operations) and the
    regular expressions alone group rows identically."""
    details = [
        ("column 'customer_email': 'user1@bad' is not an email address", ["user1@bad", "PSRC000001"]),
        ("column 'customer_id': 'bad' is not a valid id: this one has 3", ["bad", "stripe_payments"]),
        ("column 'payment_source_type': 'bitcoin' is not a payment source type", ["bitcoin", "CUST000001"]),
    ]
    fast, slow = ProblemTally(), ProblemTally()
    for n, (detail, values) in enumerate(details):
        fast.add("invalid", "INVALID_ROW", detail, ("a.csv", "", n + 2), values)
        slow.add("invalid", "INVALID_ROW", detail, ("a.csv", "", n + 2))
    assert fast.lines() == slow.lines()
    assert "…" in fast.lines()[0] and "user1@bad" not in "".join(fast.lines())
