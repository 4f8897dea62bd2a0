"""The journal's API: what goes in comes out, in order, and states move as documented."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from importer.errors import PreflightError
from importer.journal import REPORT_COLUMNS, Journal
from importer.models import Outcome, Pairing, RowStatus
from importer.report import report_line

TARGET = "https://acme.commercelayer.io"
RUN = "20260101T000000Z-aaaaaa"


def pairing(n: int) -> Pairing:
    return Pairing(
        customer_id=f"CUST{n:06d}",
        customer_email=None,
        payment_source_type="stripe_payments",
        payment_source_id=f"PSRC{n:06d}",
        reference=f"ref {n}",
        metadata={"n": n},
    )


def row(seq: int, status: str = "pending", *, with_pairing: bool = True) -> tuple[object, ...]:
    p = pairing(seq)
    raw = {"Customer": f"CUST{seq:06d}", "Notes": f"é “{seq}”"}
    return (
        seq,
        "in.csv",
        "Sheet1",
        seq + 2,
        json.dumps(raw, ensure_ascii=False),
        p.key() if with_pairing else None,
        p.to_json() if with_pairing else None,
        status,
        "INVALID_ROW" if status == "invalid" else None,
        "bad" if status == "invalid" else None,
    )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "sub" / "journal.sqlite")
    j.start_run(RUN, command="run", target=TARGET, inputs_fingerprint="fp1")
    yield j
    j.close()


def test_open_creates_parent_folder_and_uses_wal(tmp_path: Path) -> None:
    j = Journal.open(tmp_path / "a" / "b" / "j.sqlite")
    assert (tmp_path / "a" / "b" / "j.sqlite").is_file()
    assert j._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j.close()


def test_open_unwritable_path_is_a_preflight_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PreflightError, match=r"journal .*file/j\.sqlite cannot be opened for writing"):
        Journal.open(blocker / "j.sqlite")


def test_rows_in_equal_rows_out(journal: Journal) -> None:
    journal.add_rows(RUN, [row(i) for i in range(7)])
    out = list(journal.iter_rows(RUN, batch=3))  # several pages
    assert [r.seq for r in out] == list(range(7))
    assert out[4].raw == {"Customer": "CUST000004", "Notes": "é “4”"}
    assert out[4].pairing == pairing(4)
    assert out[4].source_file == "in.csv" and out[4].sheet == "Sheet1" and out[4].row_number == 6
    assert set(report_line(out[0])) == set(REPORT_COLUMNS)


def test_rows_are_kept_per_run(journal: Journal) -> None:
    journal.start_run("other", command="run", target=TARGET, inputs_fingerprint="fp2")
    journal.add_rows(RUN, [row(0), row(1)])
    journal.add_rows("other", [row(0)])
    assert len(list(journal.iter_rows(RUN))) == 2
    assert len(list(journal.iter_rows("other"))) == 1
    assert journal.has_rows("other") and not journal.has_rows("nope")


def test_add_rows_is_one_transaction(journal: Journal) -> None:
    journal.add_rows(RUN, [row(0)])
    with pytest.raises(sqlite3.IntegrityError):
        journal.add_rows(RUN, [row(1), row(0)])  # seq 0 again: the whole batch is rolled back
    assert [r.seq for r in journal.iter_rows(RUN)] == [0]


def test_iter_rows_maps_pending_and_sending_to_not_attempted(journal: Journal) -> None:
    journal.add_rows(RUN, [row(0, "pending"), row(1, "sending"), row(2, "invalid", with_pairing=False)])
    statuses = [r.status for r in journal.iter_rows(RUN)]
    assert statuses == [RowStatus.NOT_ATTEMPTED, RowStatus.NOT_ATTEMPTED, RowStatus.INVALID]
    report = [report_line(r) for r in journal.iter_rows(RUN)]
    assert report[2]["customer_id"] is None and report[2]["error_code"] == "INVALID_ROW"


def test_open_rows_order_paging_and_filter(journal: Journal) -> None:
    statuses = [
        "pending",
        "created",
        "failed",
        "already_exists",
        "duplicate_in_file",
        "not_attempted",
        "pending",
        "sending",
        "pending",
    ]
    journal.add_rows(RUN, [row(i, s) for i, s in enumerate(statuses)])
    journal.add_rows(RUN, [row(9, "invalid", with_pairing=False)])
    open_rows = list(journal.open_rows(RUN, batch=2))
    assert [seq for seq, _ in open_rows] == [0, 2, 5, 6, 7, 8]
    assert open_rows[1][1] == pairing(2)
    assert journal.count_open(RUN) == 6


def test_open_rows_does_not_skip_rows_settled_while_iterating(journal: Journal) -> None:
    journal.add_rows(RUN, [row(i) for i in range(10)])
    seen = []
    for seq, _ in journal.open_rows(RUN, batch=3):
        seen.append(seq)
        journal.set_outcome(RUN, seq, Outcome(RowStatus.CREATED, "cps1234567", attempts=1))
    assert seen == list(range(10))
    assert list(journal.open_rows(RUN)) == []


def test_set_outcome_and_attempts_accumulate(journal: Journal) -> None:
    journal.add_rows(RUN, [row(0), row(1)])
    journal.set_outcome(
        RUN,
        0,
        Outcome(RowStatus.FAILED, http_status=503, error_code="HTTP_503", error_detail="busy", attempts=5),
    )
    journal.set_many_outcomes(
        RUN,
        [
            (0, Outcome(RowStatus.CREATED, "cpsAAAAAAA", "CUST000000", 201, attempts=1)),
            (1, Outcome(RowStatus.ALREADY_EXISTS, "cpsBBBBBBB", attempts=0)),
        ],
    )
    first, second = journal.iter_rows(RUN)
    assert (first.status, first.customer_payment_source_id, first.http_status, first.attempts) == (
        RowStatus.CREATED,
        "cpsAAAAAAA",
        201,
        6,
    )
    assert first.error_code is None  # a later success clears the earlier error
    assert second.status is RowStatus.ALREADY_EXISTS
    assert journal.count_rows(RUN) == {"created": 1, "already_exists": 1}


def test_pairing_states(journal: Journal) -> None:
    key = pairing(1).key()
    assert journal.pairing_state(TARGET, key) is None
    journal.mark_sending(TARGET, key, RUN, "CUST000001")
    state = journal.pairing_state(TARGET, key)
    assert state is not None
    assert (state.state, state.customer_id, state.customer_payment_source_id, state.run_id) == (
        "sending",
        "CUST000001",
        None,
        RUN,
    )
    journal.mark_pairing(TARGET, key, RUN, Outcome(RowStatus.CREATED, "cpsAAAAAAA", "CUST000001"))
    state = journal.pairing_state(TARGET, key)
    assert state is not None and (state.state, state.customer_payment_source_id) == ("created", "cpsAAAAAAA")
    # The same pairing against another API is another pairing.
    assert journal.pairing_state("http://127.0.0.1:9999", key) is None
    # A later run sending it again (after a failure) moves it back to sending.
    journal.mark_sending(TARGET, key, "run2", "CUST000001")
    state = journal.pairing_state(TARGET, key)
    assert state is not None and (state.state, state.run_id) == ("sending", "run2")


def test_pairing_state_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    j = Journal.open(path)
    j.mark_sending(TARGET, "k", RUN, "CUST000001")
    j.close()  # as good as a crash right after the commit
    j = Journal.open(path)
    state = j.pairing_state(TARGET, "k")
    assert state is not None and state.state == "sending"
    j.close()


def test_resumable_run(journal: Journal) -> None:
    # A run killed while its input was still being read has only part of its rows: not resumable.
    assert journal.resumable_run(command="run", target=TARGET, inputs_fingerprint="fp1") is None
    journal.mark_intake_done(RUN)
    assert journal.resumable_run(command="run", target=TARGET, inputs_fingerprint="fp1") is not None
    assert journal.resumable_run(command="run", target=TARGET, inputs_fingerprint="other") is None
    assert journal.resumable_run(command="run", target="http://127.0.0.1:1", inputs_fingerprint="fp1") is None
    assert journal.resumable_run(command="validate", target=TARGET, inputs_fingerprint="fp1") is None
    journal.finish_run(RUN, "interrupted", {"counts": {}})
    info = journal.resumable_run(command="run", target=TARGET, inputs_fingerprint="fp1")
    assert info is not None and (info.run_id, info.state) == (RUN, "interrupted")
    journal.reopen_run(RUN)
    info = journal.run_info(RUN)
    assert info is not None and (info.state, info.finished_at) == ("running", None)
    journal.finish_run(RUN, "finished", {"counts": {"created": 1}})
    assert journal.resumable_run(command="run", target=TARGET, inputs_fingerprint="fp1") is None
    assert journal.run_summary(RUN) == {"counts": {"created": 1}}


def test_resumable_run_is_the_newest(journal: Journal) -> None:
    journal.finish_run(RUN, "aborted")
    journal.start_run("run-b", command="run", target=TARGET, inputs_fingerprint="fp1")
    journal.mark_intake_done("run-b")
    info = journal.resumable_run(command="run", target=TARGET, inputs_fingerprint="fp1")
    assert info is not None and info.run_id == "run-b"
    journal.finish_run("run-b", "finished")
    # The newest run of these inputs finished: an older aborted one is not resumed.
    assert journal.resumable_run(command="run", target=TARGET, inputs_fingerprint="fp1") is None


def test_run_info_and_recent_runs(journal: Journal) -> None:
    journal.start_run("run-b", command="run", target=TARGET, inputs_fingerprint="fp2")
    journal.start_run("run-c", command="run", target=TARGET, inputs_fingerprint="fp3")
    newest = journal.run_info()
    assert newest is not None and newest.run_id == "run-c"
    assert journal.run_info("nope") is None
    assert [r.run_id for r in journal.recent_runs(2)] == ["run-c", "run-b"]
    assert journal.run_summary(RUN) is None


def test_mark_unsettled(journal: Journal) -> None:
    statuses = ["pending", "sending", "created", "failed", "invalid", "duplicate_in_file"]
    journal.add_rows(RUN, [row(i, s) for i, s in enumerate(statuses)])
    journal.set_outcome(RUN, 1, Outcome(RowStatus.FAILED, error_detail="timeout"))
    journal._conn.execute("UPDATE rows SET status='sending' WHERE seq=1")  # crashed mid-request
    n = journal.mark_unsettled(RUN, RowStatus.NOT_ATTEMPTED, "not sent: run aborted")
    assert n == 2
    out = {r.seq: r for r in journal.iter_rows(RUN)}
    assert out[0].status is RowStatus.NOT_ATTEMPTED and out[0].error_detail == "not sent: run aborted"
    assert out[1].error_detail == "timeout"  # an earlier detail is kept
    assert [out[i].status.value for i in range(2, 6)] == statuses[2:]
    assert journal.mark_unsettled(RUN, RowStatus.NOT_ATTEMPTED, "again") == 0


def test_first_with_key_ignores_invalid_and_duplicates(journal: Journal) -> None:
    p = pairing(1)
    dup = (0, "a.csv", "", 2, "{}", p.key(), p.to_json(), "duplicate_in_file", None, None)
    journal.add_rows(RUN, [dup, (1, "b.csv", "S", 7, "{}", p.key(), p.to_json(), "pending", None, None)])
    assert journal.first_with_key(RUN, p.key()) == ("b.csv", "S", 7)
    assert journal.first_with_key(RUN, "missing") is None


def test_a_report_line_reads_a_pairing_stored_without_its_optional_keys(journal: Journal) -> None:
    # As a journal written before a field existed would hold it: the line shows None there,
    # as the dataclass's default would.
    stored = '{"customer_email":null,"customer_id":"CUST000001","payment_source_id":"SRC0000001",'
    stored += '"payment_source_type":"stripe_payments"}'
    journal.add_rows(RUN, [(0, "a.csv", "", 2, "{}", "k", stored, "pending", None, None)])
    (record,) = journal.iter_rows(RUN)
    line = report_line(record)
    assert (
        line["customer_id"],
        line["payment_source_id"],
        line["payment_source_token"],
        line["reference"],
    ) == (
        "CUST000001",
        "SRC0000001",
        None,
        None,
    )
    assert record.pairing is not None and record.pairing.payment_source_token is None


def test_first_with_keys_answers_many_keys_in_one_call(journal: Journal) -> None:
    # More keys than one statement takes (500), each written twice: the first row wins, and a
    # key never written is absent.
    pairs = [pairing(i) for i in range(1200)]
    rows = [
        (i, "a.csv", "", i + 2, "{}", p.key(), p.to_json(), "pending", None, None)
        for i, p in enumerate(pairs)
    ]
    again = [
        (1200 + i, "b.csv", "", i + 2, "{}", p.key(), p.to_json(), "pending", None, None)
        for i, p in enumerate(pairs)
    ]
    journal.add_rows(RUN, rows + again)
    found = journal.first_with_keys(RUN, [*(p.key() for p in pairs), "missing"])
    assert len(found) == 1200
    assert found[pairs[0].key()] == ("a.csv", "", 2)
    assert found[pairs[1199].key()] == ("a.csv", "", 1201)
    assert "missing" not in found


def test_partial_intake_is_abandoned_with_its_rows(journal: Journal) -> None:
    """A run killed mid-intake sent nothing; its partial rows are dropped, the next run starts afresh."""
    journal.add_rows(RUN, [(99, "a.csv", "", 100, "{}", "k99", None, "pending", None, None)])
    assert journal.has_rows(RUN)
    assert journal.abandon_partial_intakes() == 1
    assert not journal.has_rows(RUN)
    info = journal.run_info(RUN)
    assert info is not None and info.state == "abandoned"
    assert journal.abandon_partial_intakes() == 0


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT source_file FROM rows WHERE run_id=? AND pairing_key=?"
        " AND status NOT IN ('invalid', 'duplicate_in_file') ORDER BY seq LIMIT 1",
        "SELECT source_file FROM rows WHERE run_id=? AND pairing_key=? AND seq<?"
        " AND status NOT IN ('invalid', 'duplicate_in_file') ORDER BY seq LIMIT 1",
        "SELECT source_file FROM rows WHERE run_id=? AND resolved_key=? AND seq<?"
        " AND status NOT IN ('invalid', 'duplicate_in_file') ORDER BY seq LIMIT 1",
    ],
)
def test_first_row_with_a_key_is_found_through_the_index(journal: Journal, sql: str) -> None:
    """Intake asks this once per row; a plan that scans the table makes intake quadratic
    (100,000 rows took over 25 minutes before the index covered seq)."""
    params = ("r", "k") if sql.count("?") == 2 else ("r", "k", 5)
    plan = " ".join(str(r[3]) for r in journal._conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    index = "rows_by_resolved_key" if "resolved_key" in sql else "rows_by_key_seq"
    assert f"USING INDEX {index}" in plan and "SCAN" not in plan, plan


def test_an_email_row_is_found_by_its_resolved_key(journal: Journal) -> None:
    """An e-mail row and an id row naming the same customer collide only after resolution;
    the resolved key is kept in the journal, so memory stays flat and a resume still sees it."""
    email_key, id_key = "email:a@x.io|stripe_payments:PSRC000001", "id:CUST000001|stripe_payments:PSRC000001"
    journal.add_rows(RUN, [
        (10, "a.csv", "", 11, "{}", email_key, None, "pending", None, None),
        (20, "a.csv", "", 21, "{}", id_key, None, "pending", None, None),
    ])  # fmt: skip
    assert journal.earlier_row_with_key(RUN, id_key, 20) is None
    journal.set_resolved_key(RUN, 10, id_key)
    assert journal.earlier_row_with_key(RUN, id_key, 20) == ("a.csv", "", 11)
    assert journal.earlier_row_with_key(RUN, id_key, 10) is None  # only rows before it count


def test_send_stamps_are_kept_for_one_window_per_target(journal: Journal) -> None:
    journal.add_send_stamps("https://a", [("GET /x", 100.0), ("POST /y", 101.0)], keep_s=10)
    journal.add_send_stamps("https://b", [("GET /x", 105.0)], keep_s=10)
    assert journal.recent_send_stamps("https://a", since=0) == [("GET /x", 100.0), ("POST /y", 101.0)]
    assert journal.recent_send_stamps("https://a", since=100.5) == [("POST /y", 101.0)]
    journal.add_send_stamps("https://a", [("GET /x", 111.0)], keep_s=10)  # prunes what is older than 101
    assert journal.recent_send_stamps("https://a", since=0) == [("POST /y", 101.0), ("GET /x", 111.0)]
    assert journal.recent_send_stamps("https://b", since=0) == [("GET /x", 105.0)]
    journal.add_send_stamps("https://a", [], keep_s=10)  # nothing to write: nothing happens
