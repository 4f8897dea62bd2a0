"""report_ahead.py: the report of an imports run rendered on a thread while the run goes on.

The journal is real (SQLite in tmp_path); the end-to-end test runs the imports strategy against
the sandbox over HTTP. What must hold: the thread renders only rows that are settled, in input
order, only once the input is read; and the report written from what it rendered is the report
written in one pass afterwards, byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import customers_for, write_id_pairs
from run_helpers import run_import, sandbox_thread, settings_for, statuses
from test_report import FORMULA, RUN, TARGET, fill, pairing

from importer import report_ahead
from importer.journal import Journal
from importer.models import Outcome, RowStatus
from importer.report import FAILURES_CSV, RESULTS_CSV, Rendering, write_reports
from importer.report_ahead import ReportAhead

DEADLINE_S = 10.0


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "journal.sqlite")
    j.start_run(RUN, command="run", target=TARGET, inputs_fingerprint="fp")
    yield j
    j.close()


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Look every 20 ms, and render as soon as one row is settled."""
    monkeypatch.setattr(report_ahead, "EVERY_S", 0.02)
    monkeypatch.setattr(report_ahead, "MIN_ROWS", 1)


def wait_for(ahead: ReportAhead, rows: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while ahead.rows_rendered < rows and time.monotonic() < deadline:
        time.sleep(0.01)


def reports_alike(a: Path, b: Path) -> None:
    for name in (RESULTS_CSV, FAILURES_CSV):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_settled_rows_are_rendered_in_order_and_the_report_is_the_one_pass_report(
    journal: Journal, tmp_path: Path
) -> None:
    rows = fill(journal)  # five rows: created, invalid, failed, duplicate, already_exists
    open_seq = rows.add({"customer_id": "CUST000005", "Notes": FORMULA}, "pending", pairing(5))
    rows.add({"customer_id": "CUST000006"}, "pending", pairing(6),
             outcome=Outcome(RowStatus.CREATED, "cpsCCCCCCC", "CUST000006", 201, attempts=1))  # fmt: skip
    journal.mark_intake_done(RUN)
    ahead = ReportAhead(journal.path, RUN, tmp_path / "ahead")
    try:
        ahead.start()
        wait_for(ahead, 5)
        time.sleep(0.1)  # several more looks: the open row holds back the settled one after it
        assert ahead.rows_rendered == 5
        journal.set_outcome(RUN, open_seq, Outcome(RowStatus.FAILED, None, "CUST000005", 422, "X", "no", 1))
        wait_for(ahead, 7)
        assert ahead.rows_rendered == 7
        rendered = ahead.take()
        assert rendered is not None
        ahead_problems = write_reports(journal, RUN, tmp_path / "ahead", ["csv"], {}, rendered)
    finally:
        ahead.close()
    one_pass = write_reports(journal, RUN, tmp_path / "one", ["csv"], {})
    reports_alike(tmp_path / "ahead", tmp_path / "one")
    # invalid, failed, duplicate_in_file, and the row settled failed during the run
    assert ahead_problems.lines() == one_pass.lines() and ahead_problems.total == 4


def test_rows_still_open_at_the_end_are_rendered_by_the_report(journal: Journal, tmp_path: Path) -> None:
    rows = fill(journal)
    rows.add({"customer_id": "CUST000005"}, "pending", pairing(5))  # never settled: not_attempted
    journal.mark_intake_done(RUN)
    ahead = ReportAhead(journal.path, RUN, tmp_path / "ahead")
    try:
        ahead.start()
        wait_for(ahead, 5)
        journal.mark_unsettled(RUN, RowStatus.NOT_ATTEMPTED, "not sent: interrupted")
        write_reports(journal, RUN, tmp_path / "ahead", ["csv"], {}, ahead.take())
    finally:
        ahead.close()
    write_reports(journal, RUN, tmp_path / "one", ["csv"], {})
    reports_alike(tmp_path / "ahead", tmp_path / "one")
    assert b"not_attempted" in (tmp_path / "ahead" / RESULTS_CSV).read_bytes()


def test_nothing_is_rendered_while_the_input_is_read(journal: Journal, tmp_path: Path) -> None:
    fill(journal)
    ahead = ReportAhead(journal.path, RUN, tmp_path / "ahead")
    try:
        ahead.start()
        time.sleep(0.2)  # ten looks
        assert ahead.rows_rendered == 0
        journal.mark_intake_done(RUN)
        wait_for(ahead, 5)
        assert ahead.rows_rendered == 5
    finally:
        ahead.close()


def test_a_thread_that_fails_leaves_the_report_to_one_pass(journal: Journal, tmp_path: Path) -> None:
    fill(journal)
    not_a_journal = tmp_path / "other.sqlite"
    not_a_journal.write_bytes(b"")  # an empty database: no runs table, the first look fails
    ahead = ReportAhead(str(not_a_journal), RUN, tmp_path / "ahead")
    ahead.start()
    try:
        time.sleep(0.2)  # ten looks; the first one fails
        assert ahead.take() is None
    finally:
        ahead.close()
    write_reports(journal, RUN, tmp_path / "ahead", ["csv"], {}, None)
    write_reports(journal, RUN, tmp_path / "one", ["csv"], {})
    reports_alike(tmp_path / "ahead", tmp_path / "one")


def test_no_place_for_the_temporary_files_leaves_the_report_to_one_pass(
    journal: Journal, tmp_path: Path
) -> None:
    fill(journal)
    journal.mark_intake_done(RUN)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    ahead = ReportAhead(journal.path, RUN, blocked / "report")
    try:
        ahead.start()  # no exception: the run goes on
        assert ahead.take() is None
    finally:
        ahead.close()


def test_an_imports_run_renders_ahead_and_its_report_is_the_rebuilt_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_id_pairs(tmp_path / "in.csv", 300)
    with open(tmp_path / "in.csv", "a", encoding="utf-8") as fh:
        fh.write("CUST-nope,stripe_paymnts,PS1\n")  # invalid: a row for failures.csv
    taken: list[int] = []
    take = ReportAhead.take

    def spy(self: ReportAhead) -> Rendering | None:
        rendered = take(self)
        taken.append(rendered.rows if rendered is not None else -1)
        return rendered

    monkeypatch.setattr(ReportAhead, "take", spy)
    with sandbox_thread(customers=customers_for(300), import_rows_per_s=400) as sb:
        settings = settings_for(
            sb,
            tmp_path,
            strategy="imports",
            **{
                "imports.poll_interval_s": 0.05,
                "imports.chunk_size": 100,
                "imports.sizing": "fixed",
                "imports.max_in_flight": 1,
            },
        )
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
    assert result.exit_code == 1  # the invalid row
    assert statuses(tmp_path / "r") == {"created": 300, "invalid": 1}
    # Three imports of 100 rows, one at a time, at 400 rows/s: the thread rendered rows before
    # the report was written (the rows of the last import, at least, may be left to it).
    assert len(taken) == 1 and taken[0] > 0
    journal = Journal.open(settings.journal.path)
    try:
        summary: dict[str, Any] = {}
        write_reports(journal, result.summary["run_id"], tmp_path / "rebuilt", ["csv"], summary)
    finally:
        journal.close()
    reports_alike(tmp_path / "r", tmp_path / "rebuilt")
