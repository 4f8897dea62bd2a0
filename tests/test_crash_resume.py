"""Crashes and stops through the real command line (`python -m importer run` as a child process):
kill -9 mid-run then resume, kill -9 while POSTs are held in flight, SIGTERM/SIGINT letting
in-flight requests finish, and journal states forged the way a crash leaves them.

Assertions are on counts and states (journal, results.csv, the sandbox's records and request
log), never on seconds. Every wait is bounded; every child process is killed in a finally.
"""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
from pathlib import Path

import pytest
import xlsxwriter
from e2e_helpers import (
    SandboxProcess,
    api_call,
    api_of,
    cli,
    create_posts,
    customers_for,
    importer_proc,
    journal_pairings,
    journal_query,
    pairing_states,
    quiet,
    rate_limit_for,
    record_key,
    refused_posts,
    results,
    run_argv,
    sample_keys,
    status_counts,
    summary,
    wait_for,
    words,
    write_config,
    write_id_pairs,
)

from importer.intake import intake
from importer.journal import Journal
from importer.loader import Loader
from importer.pipeline import inputs_fingerprint
from importer.sandbox.sample import write_sample
from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED
from importer.sandbox.testing import SandboxThread, fast_settings
from importer.validator import Defaults


def _row_numbers_once(rows: list[dict[str, str]], total: int) -> None:
    numbers = [int(r["row_number"]) for r in rows]
    assert len(numbers) == total and sorted(numbers) == list(range(2, total + 2))


def _sandbox_state(sb: SandboxProcess) -> tuple[set[str], int]:
    records = sb.records()
    keys = [record_key(r) for r in records]
    assert len(keys) == len(set(keys)), "the sandbox holds two records for one pairing"
    return set(keys), len(sb.requests_log())


@pytest.mark.slow
def test_kill_9_mid_run_loses_nothing_and_the_resume_sends_nothing_twice(tmp_path: Path) -> None:
    rows = 80
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=rows)
    journal = tmp_path / "journal.sqlite"
    args = words("--time-scale 0.05 --set burst_limit=8 --set average_limit=40 --customers")
    with SandboxProcess(*args, str(info.customers), log_dir=tmp_path) as sb:
        config = write_config(
            tmp_path / "config.yaml",
            api_of(sb),
            journal,
            concurrency=4,
            rate_limit=rate_limit_for(0.05, 8, 40),
        )
        argv = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep")
        with importer_proc(argv, tmp_path, "first") as first:
            wait_for(
                lambda: pairing_states(journal).get("created", 0) >= 15 or first.proc.poll() is not None,
                60,
                "15 pairings created in the journal",
            )
            assert first.proc.poll() is None, f"the run ended before the kill: {first.err[-2000:]}"
            first.signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        quiet(sb)

        # SIGKILL lost nothing: every record the API holds is in the journal as created or
        # sending (outcome unknown), and every input row is in the journal.
        in_api, log_len = _sandbox_state(sb)
        states = journal_pairings(journal)
        created_before = {k for k, s in states.items() if s == "created"}
        sending_before = {k for k, s in states.items() if s == "sending"}
        assert set(states.values()) <= {"created", "sending"}
        assert created_before <= in_api
        assert in_api <= created_before | sending_before
        assert 15 <= len(in_api) < rows
        assert journal_query(journal, "SELECT COUNT(*) FROM rows") == [(rows,)]
        assert journal_query(journal, "SELECT state FROM runs") == [("running",)]

        # The report can be rebuilt from the journal alone, whatever the kill left.
        rebuilt = cli(
            [
                "report",
                "--journal",
                str(journal),
                "-c",
                str(config),
                "--report-dir",
                str(tmp_path / "rebuilt"),
                "--log-format",
                "json",
            ]
        )
        assert rebuilt.code == 0, rebuilt.err[-2000:]
        rebuilt_rows = results(tmp_path / "rebuilt")
        _row_numbers_once(rebuilt_rows, rows)
        assert status_counts(rebuilt_rows) == {
            "created": len(created_before),
            "not_attempted": rows - len(created_before),
        }

        # The same command again resumes the run.
        with importer_proc(argv, tmp_path, "second") as second:
            assert second.wait(90) == 0, second.err[-3000:]
        final = results(tmp_path / "rep")
        _row_numbers_once(final, rows)
        assert status_counts(final) == {"created": rows}
        run_ids = journal_query(journal, "SELECT run_id, state FROM runs")
        assert run_ids is not None and len(run_ids) == 1 and run_ids[0][1] == "finished"
        assert summary(tmp_path / "rep")["run_id"] == run_ids[0][0]

        # Exactly one record per pairing, and nothing created before the kill was POSTed again.
        stats = sb.stats()
        assert stats["duplicates"]["count"] == 0
        records = sb.records()
        assert sorted(record_key(r) for r in records) == sorted(sample_keys(rows, info.customers))
        log_after = sb.requests_log()[log_len:]
        posts_after = create_posts(log_after)
        assert posts_after == {"201": rows - len(in_api)}, posts_after
        s = summary(tmp_path / "rep")
        # The resumed process starts inside the server's window the killed one filled: its 429'd
        # POSTs were not processed and were sent again.
        assert s["posts"] == rows - len(in_api) + refused_posts(log_after)
        # Pairings left `sending` whose POST had landed were settled by the look-up.
        assert s["ambiguous_outcomes"] == len(in_api & sending_before)
        ids = {r["customer_payment_source_id"] for r in final}
        assert ids == {r["id"] for r in records}
        assert set(journal_pairings(journal).values()) == {"created"}


@pytest.mark.slow
def test_kill_9_while_posts_are_held_in_flight_then_settled_by_look_up(tmp_path: Path) -> None:
    rows, held = 20, 3
    keys = write_id_pairs(tmp_path / "in.csv", rows)
    journal = tmp_path / "journal.sqlite"
    # slow_response holds every /api answer after the handler ran: the one wallet look-up, then
    # every POST, committed but unanswered.
    args = words("--time-scale 0.05 --fault slow_response=1.0 --fault slow_response_s=1.5 --customers")
    with SandboxProcess(*args, str(customers_for(rows)), log_dir=tmp_path) as sb:
        config = write_config(
            tmp_path / "config.yaml",
            api_of(sb),
            journal,
            concurrency=held,
            rate_limit=rate_limit_for(0.05, 25, 100),
            timeouts={"request_s": 120, "shutdown_grace_s": 1},
        )
        argv = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep")
        with importer_proc(argv, tmp_path, "first") as first:
            wait_for(
                lambda: pairing_states(journal).get("sending", 0) >= held and sb.created() >= held,
                60,
                f"{held} committed POSTs in flight",
            )
            first.signal(signal.SIGKILL)
            first.wait(10)
        assert pairing_states(journal) == {"sending": held}
        # The held answers end in the sandbox's log (dropped, or sent to no one) before we count.
        wait_for(
            lambda: (
                sum(
                    1
                    for e in sb.requests_log()
                    if e["method"] == "POST" and e["path"] == "/api/customer_payment_sources"
                )
                >= held
            ),
            10,
            "the held POSTs to be logged",
        )
        in_api, log_len = _sandbox_state(sb)
        assert in_api == set(journal_pairings(journal))
        sb.set_faults(slow_response=0.0)

        with importer_proc(argv, tmp_path, "second") as second:
            assert second.wait(90) == 0, second.err[-3000:]
        final = results(tmp_path / "rep")
        _row_numbers_once(final, rows)
        assert status_counts(final) == {"created": rows}
        s = summary(tmp_path / "rep")
        assert s["ambiguous_outcomes"] == held  # settled by the look-up ...
        log_after = sb.requests_log()[log_len:]
        assert s["posts"] == rows - held + refused_posts(log_after)  # ... and never sent again
        assert create_posts(log_after) == {"201": rows - held}
        assert sb.stats()["duplicates"]["count"] == 0
        assert sorted(record_key(r) for r in sb.records()) == sorted(keys)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_graceful_stop_lets_in_flight_finish_reports_the_rest_then_resumes(
    tmp_path: Path, sig: signal.Signals
) -> None:
    rows = 24
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=rows)
    journal = tmp_path / "journal.sqlite"
    args = words("--time-scale 0.05 --fault slow_response=1.0 --fault slow_response_s=1.0 --customers")
    with SandboxProcess(*args, str(info.customers), log_dir=tmp_path) as sb:
        config = write_config(
            tmp_path / "config.yaml",
            api_of(sb),
            journal,
            concurrency=4,
            rate_limit=rate_limit_for(0.05, 25, 100),
            timeouts={"request_s": 20, "shutdown_grace_s": 15},
        )
        argv = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep")
        with importer_proc(argv, tmp_path, "first") as first:
            # The second wave of POSTs is committed and its answers are held: in flight.
            wait_for(lambda: sb.created() >= 6, 60, "a second wave of POSTs in flight")
            in_flight = pairing_states(journal).get("sending", 0)
            first.signal(sig)
            code = first.wait(60)
            err = first.err
        assert code == 130, err[-3000:]
        assert in_flight >= 1
        assert "interrupted" in err
        quiet(sb)
        in_api, log_len = _sandbox_state(sb)
        rows1 = results(tmp_path / "rep")
        _row_numbers_once(rows1, rows)
        counts = status_counts(rows1)
        # In-flight requests finished and were recorded: every record in the API is `created`.
        assert counts.get("created", 0) == len(in_api) >= 6
        assert counts == {"created": len(in_api), "not_attempted": rows - len(in_api)}
        assert {r["customer_payment_source_id"] for r in rows1 if r["status"] == "created"} == {
            r["id"] for r in sb.records()
        }
        assert "sending" not in pairing_states(journal)
        s1 = summary(tmp_path / "rep")
        assert s1["run_state"] == "interrupted" and s1["counts"]["not_attempted"] == rows - len(in_api)

        sb.set_faults(slow_response=0.0)
        with importer_proc(argv, tmp_path, "second") as second:
            assert second.wait(90) == 0, second.err[-3000:]
        final = results(tmp_path / "rep")
        assert status_counts(final) == {"created": rows}
        log_after = sb.requests_log()[log_len:]
        assert summary(tmp_path / "rep")["posts"] == rows - len(in_api) + refused_posts(log_after)
        assert create_posts(log_after) == {"201": rows - len(in_api)}
        assert sb.stats()["duplicates"]["count"] == 0
        assert sb.created() == rows


def _forge_unfinished(journal: Path, keys_to_sending: list[str]) -> None:
    """Make the journal look as a kill -9 mid-POST leaves it: these pairings `sending` with no id,
    their rows not settled, the run not finished."""
    conn = sqlite3.connect(journal)
    try:
        for key in keys_to_sending:
            assert (
                conn.execute(
                    "UPDATE pairings SET state='sending', customer_payment_source_id=NULL"
                    " WHERE pairing_key=?",
                    (key,),
                ).rowcount
                == 1
            )
            assert (
                conn.execute(
                    "UPDATE rows SET status='pending', customer_payment_source_id=NULL, http_status=NULL"
                    " WHERE pairing_key=?",
                    (key,),
                ).rowcount
                == 1
            )
        conn.execute("UPDATE runs SET state='running', finished_at=NULL, summary_json=NULL")
        conn.commit()
    finally:
        conn.close()


def test_forged_sending_pairings_are_settled_by_look_up_before_any_post(tmp_path: Path) -> None:
    rows = 20
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=rows)
    keys = sample_keys(rows, info.customers)
    journal = tmp_path / "journal.sqlite"
    with SandboxThread(fast_settings(customers=info.customers)) as sb:
        config = write_config(
            tmp_path / "config.yaml",
            api_of(sb),
            journal,
            rate_limit=rate_limit_for(0.05, 25, 100) | {"safety_margin_s": 0.15},
        )
        argv = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep")
        first = cli(argv)
        assert first.code == 0, first.err[-2000:]
        before = {r["row_number"]: r["customer_payment_source_id"] for r in results(tmp_path / "rep")}
        # Row 0 and row 2 name their customer by id, so their row key is the pairing key.
        landed, lost = keys[0], keys[2]
        lost_id = before["4"]
        assert api_call(sb, "DELETE", f"/api/customer_payment_sources/{lost_id}") == 204  # never landed
        _forge_unfinished(journal, [landed, lost])

        second = cli(argv)
        assert second.code == 0, second.err[-2000:]
        after = results(tmp_path / "rep")
        assert status_counts(after) == {"created": rows}
        by_row = {r["row_number"]: r["customer_payment_source_id"] for r in after}
        assert by_row["2"] == before["2"]  # the look-up found the record the lost answer created
        assert by_row["4"] != lost_id  # the POST that never landed was sent once, and created
        s = summary(tmp_path / "rep")
        assert s["ambiguous_outcomes"] == 1 and s["posts"] == 1
        assert len(journal_query(journal, "SELECT run_id FROM runs") or []) == 1  # resumed, not new
        stats = sb.stats()
        assert stats["duplicates"]["count"] == 0
        assert sorted(record_key(r) for r in sb.records()) == sorted(keys)
        assert create_posts(sb.requests_log()) == {"201": rows + 1}


def test_a_resumed_run_logs_under_the_run_id_of_its_report(tmp_path: Path) -> None:
    """Alerting joins log events to summary.json by run_id: a resumed run must log under the id
    it resumed (the one its report and journal carry), not under a fresh id it never uses."""
    rows = 6
    write_id_pairs(tmp_path / "in.csv", rows)
    journal = tmp_path / "journal.sqlite"
    with SandboxThread(fast_settings(customers=customers_for(rows))) as sb:
        config = write_config(
            tmp_path / "config.yaml",
            api_of(sb),
            journal,
            rate_limit=rate_limit_for(0.05, 25, 100) | {"safety_margin_s": 0.15},
        )
        argv = run_argv([tmp_path / "in.csv"], config, tmp_path / "rep")
        assert cli(argv).code == 0
        conn = sqlite3.connect(journal)
        try:  # the run did not finish (a crash after its last row)
            conn.execute("UPDATE runs SET state='running', finished_at=NULL, summary_json=NULL")
            conn.commit()
        finally:
            conn.close()
        resumed = cli(argv)
    assert resumed.code == 0
    report_id = summary(tmp_path / "rep")["run_id"]
    events = [json.loads(line) for line in resumed.err.splitlines() if line.startswith("{")]
    assert any(e["event"] == "run.resume" for e in events)
    logged = {e.get("run_id") for e in events}
    assert logged == {report_id}, f"the resumed run logged under {logged}; its report says {report_id}"


def test_an_unfinished_run_is_resumed_only_for_the_same_sheets(tmp_path: Path) -> None:
    """`--sheet A` is killed (after its last row, before it could mark the run finished); then
    `--sheet B` of the same workbook must import sheet B, not resume sheet A's run."""
    data = generate(DEMO_SEED, 20)
    book = xlsxwriter.Workbook(str(tmp_path / "book.xlsx"))
    for name, start in (("A", 0), ("B", 3)):
        sheet = book.add_worksheet(name)
        sheet.write_row(0, 0, ["customer_id", "payment_source_type", "payment_source_id"])
        for r, s in enumerate(data.sources[start : start + 3], start=1):
            sheet.write_row(r, 0, [s.customer_id, s.type, s.id])
    book.close()
    journal = tmp_path / "journal.sqlite"
    with SandboxThread(fast_settings()) as sb:
        config = write_config(
            tmp_path / "config.yaml", api_of(sb), journal, rate_limit=rate_limit_for(0.05, 25, 100)
        )
        assert cli(run_argv([tmp_path / "book.xlsx"], config, tmp_path / "ra", "--sheet", "A")).code == 0
        conn = sqlite3.connect(journal)
        try:
            conn.execute("UPDATE runs SET state='running', finished_at=NULL, summary_json=NULL")
            conn.commit()
        finally:
            conn.close()
        out = cli(run_argv([tmp_path / "book.xlsx"], config, tmp_path / "rb", "--sheet", "B"))
        got = [(r["sheet"], r["status"]) for r in results(tmp_path / "rb")]
        records = len(sb.records())
    assert out.code == 0
    assert got == [("B", "created")] * 3, (
        f"`--sheet B` reported {got}: it resumed the unfinished `--sheet A` run"
    )
    assert records == 6


def test_a_run_killed_during_intake_resumes_with_every_input_row(tmp_path: Path) -> None:
    """A run killed (or Ctrl-C'd) while intake is still writing rows to the journal leaves a
    `running` run with only the batches flushed so far. The next run of the same file resumes it;
    the rows intake never wrote must still be read, imported and reported."""
    valid_head, valid_tail, flushed = 10, 10, 2000
    keys_info = write_sample(tmp_path / "pairs.csv", DEMO_SEED, 20, rows=valid_head + valid_tail)
    pairs = (tmp_path / "pairs.csv").read_text(encoding="utf-8").splitlines()
    header, body = pairs[0], pairs[1:]
    # 2,100 rows: intake flushes rows in batches of 2,000, so a kill after the first flush leaves
    # 2,000 rows. Most are repeats of the first row (duplicate_in_file: no request), which keeps
    # the test fast; 10 new pairings come after row 2,000.
    lines = [
        *body[:valid_head],
        *itertools.repeat(body[0], flushed - valid_head),
        *body[valid_head:],
        *itertools.repeat(body[0], 90),
    ]
    total = len(lines)
    source = tmp_path / "in.csv"
    source.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    journal_path = tmp_path / "journal.sqlite"
    with SandboxThread(fast_settings(customers=keys_info.customers)) as sb:
        config = write_config(
            tmp_path / "config.yaml",
            api_of(sb),
            journal_path,
            rate_limit=rate_limit_for(0.05, 25, 100) | {"safety_margin_s": 0.15},
        )
        # What a kill after intake's first flush leaves behind (pipeline.execute, step by step).
        journal = Journal.open(journal_path)
        try:
            loader = Loader([str(source)])
            journal.start_run(
                "killed-in-intake",
                command="run",
                target=sb.base_url,
                inputs_fingerprint=inputs_fingerprint(loader),
            )
            intake(itertools.islice(loader, flushed), journal, "killed-in-intake", Defaults())
        finally:
            journal.close()

        out = cli(run_argv([source], config, tmp_path / "rep"))
        rows = results(tmp_path / "rep")
        expected = sample_keys(valid_head + valid_tail, keys_info.customers)
        in_api = sorted(record_key(r) for r in sb.records())
        assert len(rows) == total, (
            f"the resumed run reported {len(rows)} of {total} input rows; rows intake had not written "
            "before the kill were silently dropped"
        )
        assert in_api == sorted(expected)
        assert out.code == 1  # the repeated rows are duplicate_in_file, reported as failures
        assert status_counts(rows) == {
            "created": valid_head + valid_tail,
            "duplicate_in_file": total - valid_head - valid_tail,
        }


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_during_intake_then_the_rerun_imports_every_row(tmp_path: Path, sig: signal.Signals) -> None:
    """The same hole as above, reached for real: Ctrl-C or SIGTERM while a big file is still being
    read. The stop itself must be the graceful one (exit 130, no traceback, nothing sent), and the
    next run must read, import and report every row."""
    total = 30_000
    keys = write_id_pairs(tmp_path / "pairs.csv", 2)
    header, first, last = (tmp_path / "pairs.csv").read_text(encoding="utf-8").splitlines()
    source = tmp_path / "big.csv"
    # A valid pairing, the same pairing again and again (duplicate_in_file: no request), and a
    # second valid pairing in the very last row.
    source.write_text(
        "\n".join([header, first, *itertools.repeat(first, total - 2), last]) + "\n", encoding="utf-8"
    )
    journal = tmp_path / "journal.sqlite"
    with SandboxThread(fast_settings(customers=customers_for(2))) as sb:
        config = write_config(
            tmp_path / "config.yaml",
            api_of(sb),
            journal,
            rate_limit=rate_limit_for(0.05, 25, 100) | {"safety_margin_s": 0.15},
        )
        argv = run_argv([source], config, tmp_path / "rep")
        with importer_proc(argv, tmp_path, "first") as proc:
            wait_for(
                lambda: (
                    (journal_query(journal, "SELECT COUNT(*) FROM rows") or [(0,)])[0][0] > 0
                    or proc.proc.poll() is not None
                ),
                60,
                "intake to write its first rows",
            )
            assert proc.proc.poll() is None, "intake finished before the signal"
            proc.signal(sig)
            code = proc.wait(30)
            err = proc.err
        assert code == 130, f"{sig.name} during intake: exit {code}, not 130; stderr: {err[-1000:]!r}"
        assert "Traceback" not in err
        assert sb.stats()["requests_total"] == 0  # stopped before anything was sent
        written = (journal_query(journal, "SELECT COUNT(*) FROM rows") or [(0,)])[0][0]
        assert 0 < written < total

        with importer_proc(argv, tmp_path, "second") as proc:
            code = proc.wait(120)
            err = proc.err
        assert code == 1, err[-2000:]  # the repeats are duplicate_in_file
        rows = results(tmp_path / "rep")
        in_api = sorted(record_key(r) for r in sb.records())
        assert len(rows) == total, (
            f"the rerun reported {len(rows)} of {total} rows: it resumed the interrupted run with the "
            f"{written} rows intake had written, and the others were never read again"
        )
        assert in_api == sorted(keys)
