"""Issue 12, `importer undo`, end to end through the CLI against the sandbox over HTTP.

- a whole run undone: only what it created, each record checked for its importer_key, and a
  second identical undo sends nothing; a rerun of the original file then skips the undone
  pairings unless `--recreate-undone`;
- undo from results.csv with no journal;
- records deleted by hand, replaced, or re-keyed by someone else; `--dry-run` sends no DELETE;
- commit-then-fail on DELETE: a look-up, never a second DELETE;
- no terminal and no `--yes`: refused with exit 2 before anything is read or sent;
- kill -9 mid-undo (a real child process), then the same command resumes it.

Assertions are on counts and states (results.csv, summary.json, the journal, the sandbox's
records and request log), never on seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import (
    SandboxProcess,
    api_json,
    api_of,
    clean_env,
    cli,
    importer_proc,
    journal_query,
    quiet,
    rate_limit_for,
    record_key,
    results,
    run_argv,
    status_counts,
    summary,
    wait_for,
    words,
    write_config,
)

from importer.models import pairing_digest
from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_SEED
from importer.sandbox.testing import SandboxThread, fast_settings

CUSTOMERS = 72


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(fast_settings(customers=CUSTOMERS, burst_limit=60, average_limit=600)) as sb:
        yield sb


def _config(sb: Any, tmp_path: Path, journal: Path, name: str = "config.yaml", **sections: Any) -> Path:
    rate = rate_limit_for(
        sb.settings.time_scale,
        sb.settings.burst_limit_for("uncacheable"),
        sb.settings.average_limit_for("uncacheable"),
    ) | {"safety_margin_s": 0.15}
    return write_config(tmp_path / name, api_of(sb), journal, rate_limit=rate, **sections)


def _run(inputs: Path, config: Path, report: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = cli(run_argv([inputs], config, report, *extra))
    return result.code, summary(report)


def _undo(config: Path, report: Path, *args: str) -> tuple[int, str]:
    result = cli(["undo", *args, "-c", str(config), "--report-dir", str(report), "--log-format", "json"])
    return result.code, result.err


def _api_log(sb: Any, since: int = 0) -> list[dict[str, Any]]:
    return [e for e in sb.requests_log()[since:] if e["path"].startswith("/api")]


def _count(log: list[dict[str, Any]], method: str) -> int:
    return sum(1 for e in log if e["method"] == method and e["path"].startswith("/api/customer_payment"))


def _records(sb: Any) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in sb.records()}


def _run_id(report: Path) -> str:
    return str(summary(report)["run_id"])


# -- a whole run ----------------------------------------------------------------------------------


def test_undo_of_a_whole_run_then_again_then_a_rerun_of_the_file(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    rows = 30
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=rows)
    journal = tmp_path / "journal.sqlite"
    config = _config(sandbox, tmp_path, journal)
    # Someone made the entry of the first row by hand before the run: the run finds it
    # (already_exists), so it is not the run's to undo.
    code, s = _run(tmp_path / "in.csv", config, tmp_path / "pre", "--max-rows", "1")
    assert code == 1 and s["counts"]["created"] == 1  # the other rows are not_attempted
    first = next(r for r in results(tmp_path / "pre") if r["status"] == "created")
    status, _ = api_json(
        sandbox,
        "PATCH",
        f"/api/customer_payment_sources/{first['customer_payment_source_id']}",
        {"data": {"type": "customer_payment_sources", "id": first["customer_payment_source_id"],
                  "attributes": {"metadata": {"owner": "finance"}}}},
    )  # fmt: skip
    assert status == 200
    journal.unlink()  # the hand-made entry is not in the journal: a fresh start
    for extra in ("-wal", "-shm"):
        Path(f"{journal}{extra}").unlink(missing_ok=True)

    code, s = _run(tmp_path / "in.csv", config, tmp_path / "run")
    assert code == 0 and s["counts"]["created"] == rows - 1 and s["counts"]["already_exists"] == 1
    run_id = _run_id(tmp_path / "run")
    assert len(sandbox.records()) == rows

    before = len(sandbox.requests_log())
    code, err = _undo(config, tmp_path / "undo1", run_id, "--yes")
    assert code == 0, err
    lines = results(tmp_path / "undo1")
    assert len(lines) == rows  # rows in = rows out
    assert status_counts(lines) == {"deleted": rows - 1, "skipped": 1}
    skipped = next(r for r in lines if r["status"] == "skipped")
    assert skipped["error_code"] == "NOT_CREATED_BY_RUN"
    assert skipped["error_detail"].startswith(f"already_exists in run {run_id}")
    assert skipped["customer_payment_source_id"] == first["customer_payment_source_id"]
    assert list(_records(sandbox)) == [first["customer_payment_source_id"]]  # the hand-made one stays
    log = _api_log(sandbox, before)
    assert _count(log, "DELETE") == rows - 1
    assert _count(log, "GET") == 2  # one ownership look-up per 25 rows
    s1 = summary(tmp_path / "undo1")
    assert s1["command"] == "undo" and s1["undo_of"] == run_id and s1["deletes"] == rows - 1
    assert s1["counts"] == {
        "deleted": rows - 1,
        "already_deleted": 0,
        "would_delete": 0,
        "skipped": 1,
        "failed": 0,
        "not_attempted": 0,
    }
    # The journal records what was undone, and the pairings are `undone`.
    assert journal_query(journal, "SELECT state, COUNT(*) FROM deletions GROUP BY state") == [
        ("deleted", rows - 1)
    ]
    assert journal_query(journal, "SELECT COUNT(*) FROM pairings WHERE state='undone'") == [(rows - 1,)]
    # `importer report` rebuilds an undo's report from the journal, like a run's.
    undo_id = str(s1["run_id"])
    rebuilt = cli(["report", "--journal", str(journal), "--run-id", undo_id, "-c", str(config),
                   "--report-dir", str(tmp_path / "rebuilt"), "--log-format", "json"])  # fmt: skip
    assert rebuilt.code == 0
    assert results(tmp_path / "rebuilt") == lines

    # The same undo again: nothing to do, not a single request.
    before = len(sandbox.requests_log())
    code, err = _undo(config, tmp_path / "undo2", run_id, "--yes")
    assert code == 0, err
    assert status_counts(results(tmp_path / "undo2")) == {"already_deleted": rows - 1, "skipped": 1}
    assert _api_log(sandbox, before) == []
    assert summary(tmp_path / "undo2")["requests"] == 0

    # A rerun of the original file does not quietly create them again: it says why it skips...
    before = len(sandbox.requests_log())
    rerun = cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "rerun"))
    code, s = rerun.code, summary(tmp_path / "rerun")
    assert code == 0
    # ... on the console too, where a person reads it, not only in results.csv.
    assert "notes:" in rerun.out
    assert f"{rows - 1} rows: skipped: UNDONE: `importer undo` (run" in rerun.out
    assert s["counts"]["skipped"] == rows - 1 and s["counts"]["already_exists"] == 1
    undone = [r for r in results(tmp_path / "rerun") if r["status"] == "skipped"]
    assert {r["error_code"] for r in undone} == {"UNDONE"}
    assert "--recreate-undone" in undone[0]["error_detail"]
    assert _count(_api_log(sandbox, before), "POST") == 0
    # ... and creates them when asked to, counting them.
    code, s = _run(tmp_path / "in.csv", config, tmp_path / "recreate", "--recreate-undone")
    assert code == 0
    assert s["counts"]["created"] == rows - 1 and s["recreated_after_undo"] == rows - 1
    assert len(sandbox.records()) == rows
    assert sandbox.stats()["duplicates"]["count"] == 0


def test_undo_from_results_csv_without_a_journal(sandbox: SandboxThread, tmp_path: Path) -> None:
    rows = 12
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=rows)
    code, _ = _run(tmp_path / "in.csv", _config(sandbox, tmp_path, tmp_path / "a.sqlite"), tmp_path / "run")
    assert code == 0 and len(sandbox.records()) == rows
    report = tmp_path / "run" / "results.csv"

    # Another machine: a journal that never saw the run.
    other = _config(sandbox, tmp_path, tmp_path / "b.sqlite", name="other.yaml")
    before = len(sandbox.requests_log())
    code, err = _undo(other, tmp_path / "undo", "--results", str(report), "--yes")
    assert code == 0, err
    assert status_counts(results(tmp_path / "undo")) == {"deleted": rows}
    assert sandbox.records() == []
    assert _count(_api_log(sandbox, before), "DELETE") == rows

    # Again on that machine: its journal knows, nothing is sent.
    before = len(sandbox.requests_log())
    code, _ = _undo(other, tmp_path / "again", "--results", str(report), "--yes")
    assert code == 0 and status_counts(results(tmp_path / "again")) == {"already_deleted": rows}
    assert _api_log(sandbox, before) == []

    # A third machine: one look-up finds them gone, and still no DELETE.
    third = _config(sandbox, tmp_path, tmp_path / "c.sqlite", name="third.yaml")
    before = len(sandbox.requests_log())
    code, _ = _undo(third, tmp_path / "third", "--results", str(report), "--yes")
    assert code == 0 and status_counts(results(tmp_path / "third")) == {"already_deleted": rows}
    log = _api_log(sandbox, before)
    assert _count(log, "DELETE") == 0 and _count(log, "GET") == 1


def test_not_a_results_csv_is_refused_naming_the_file(sandbox: SandboxThread, tmp_path: Path) -> None:
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=3)
    config = _config(sandbox, tmp_path, tmp_path / "j.sqlite")
    code, err = _undo(config, tmp_path / "u", "--results", str(tmp_path / "in.csv"), "--yes")
    assert code == 2
    assert f"{tmp_path / 'in.csv'}: not a results.csv of `importer run` (missing column(s): status" in err
    code, err = _undo(config, tmp_path / "u", "--yes")
    assert code == 2 and "importer undo RUN_ID, or importer undo --results" in err


# -- whose records ----------------------------------------------------------------------------------


def test_records_deleted_by_hand_replaced_or_rekeyed_are_left_alone(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    rows = 10
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=rows)
    config = _config(sandbox, tmp_path, tmp_path / "journal.sqlite")
    code, _ = _run(tmp_path / "in.csv", config, tmp_path / "run")
    assert code == 0
    run_id = _run_id(tmp_path / "run")
    created = [r["customer_payment_source_id"] for r in results(tmp_path / "run")]
    records = _records(sandbox)

    def patch_metadata(record_id: str, metadata: dict[str, Any]) -> None:
        body = {
            "data": {
                "type": "customer_payment_sources",
                "id": record_id,
                "attributes": {"metadata": metadata},
            }
        }
        assert api_json(sandbox, "PATCH", f"/api/customer_payment_sources/{record_id}", body)[0] == 200

    # rows 0, 1: deleted by hand; row 2: deleted and replaced by a record someone else made for
    # the same pairing; row 3: re-keyed by someone else; row 4: its importer_key removed.
    for record_id in created[:3]:
        assert api_json(sandbox, "DELETE", f"/api/customer_payment_sources/{record_id}")[0] == 204
    replaced = records[created[2]]
    status, body = api_json(
        sandbox,
        "POST",
        "/api/customer_payment_sources",
        {"data": {"type": "customer_payment_sources", "attributes": {"metadata": {"importer_key": "theirs"}},
                  "relationships": {
                      "customer": {"data": {"type": "customers", "id": replaced["customer_id"]}},
                      "payment_source": {"data": {"type": replaced["payment_source_type"],
                                                  "id": replaced["payment_source_id"]}}}}},
    )  # fmt: skip
    assert status == 201
    replacement = body["data"]["id"]
    patch_metadata(created[3], {"importer_key": "someone-else"})
    patch_metadata(created[4], {"note": "kept by hand"})

    # A dry run lists it all and sends no DELETE.
    before = len(sandbox.requests_log())
    code, err = _undo(config, tmp_path / "dry", run_id, "--dry-run")
    assert code == 0, err
    assert status_counts(results(tmp_path / "dry")) == {"already_deleted": 3, "skipped": 2, "would_delete": 5}
    assert _count(_api_log(sandbox, before), "DELETE") == 0
    assert journal_query(tmp_path / "journal.sqlite", "SELECT COUNT(*) FROM deletions") == [(0,)]

    code, err = _undo(config, tmp_path / "undo", run_id, "--yes")
    assert code == 0, err
    lines = results(tmp_path / "undo")
    assert [r["status"] for r in lines] == ["already_deleted"] * 3 + ["skipped"] * 2 + ["deleted"] * 5
    assert lines[3]["error_code"] == "NOT_CREATED_BY_IMPORTER"
    expected = pairing_digest(record_key(records[created[3]]))
    assert lines[3]["error_detail"] == (
        f"the record's metadata.importer_key is someone-else, not {expected} (this row's pairing): "
        "another record or another pairing; left alone"
    )
    assert lines[4]["error_detail"].startswith("the record has no metadata.importer_key")
    assert lines[0]["error_code"] == "RECORD_NOT_FOUND"
    assert sorted(_records(sandbox)) == sorted([created[3], created[4], replacement])


# -- unknown outcomes -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["502", "drop"])
def test_commit_then_fail_on_delete_is_looked_up_not_sent_again(
    sandbox: SandboxThread, tmp_path: Path, mode: str
) -> None:
    rows = 8
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=rows)
    config = _config(sandbox, tmp_path, tmp_path / "journal.sqlite")
    code, _ = _run(tmp_path / "in.csv", config, tmp_path / "run")
    assert code == 0
    sandbox.set_faults(commit_then_fail=1.0, commit_then_fail_scope="writes", commit_then_fail_mode=mode)
    before = len(sandbox.requests_log())
    code, err = _undo(config, tmp_path / "undo", _run_id(tmp_path / "run"), "--yes")
    assert code == 0, err
    assert status_counts(results(tmp_path / "undo")) == {"deleted": rows}
    s = summary(tmp_path / "undo")
    assert s["ambiguous_outcomes"] == rows and s["deletes"] == rows
    log = _api_log(sandbox, before)
    assert _count(log, "DELETE") == rows  # every DELETE failed to answer, and none was sent twice
    assert sandbox.stats()["faults"]["commit_then_fail"] == rows
    assert sandbox.records() == []


# -- confirmation -----------------------------------------------------------------------------------


def test_without_a_terminal_and_without_yes_undo_refuses(sandbox: SandboxThread, tmp_path: Path) -> None:
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=5)
    journal = tmp_path / "journal.sqlite"
    config = _config(sandbox, tmp_path, journal)
    code, _ = _run(tmp_path / "in.csv", config, tmp_path / "run")
    assert code == 0
    before = len(sandbox.requests_log())
    proc = subprocess.run(
        [sys.executable, "-m", "importer", "undo", _run_id(tmp_path / "run"), "-c", str(config)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "there is no terminal to ask on; pass --yes to confirm" in proc.stderr
    assert len(sandbox.records()) == 5 and _api_log(sandbox, before) == []
    assert journal_query(journal, "SELECT COUNT(*) FROM runs WHERE command='undo'") == [(0,)]


# -- kill -9 ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_kill_9_or_sigterm_mid_undo_then_the_same_command_resumes_it(
    tmp_path: Path, how: signal.Signals
) -> None:
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
        assert cli(run_argv([tmp_path / "in.csv"], config, tmp_path / "run")).code == 0
        run_id = _run_id(tmp_path / "run")
        assert len(sb.records()) == rows
        quiet(sb)
        before = len(sb.requests_log())
        argv = ["undo", run_id, "--yes", "-c", str(config), "--report-dir", str(tmp_path / "undo"),
                "--log-format", "json"]  # fmt: skip

        def deleted() -> int:
            got = journal_query(journal, "SELECT COUNT(*) FROM deletions WHERE state='deleted'")
            return int(got[0][0]) if got else 0

        with importer_proc(argv, tmp_path, "first") as first:
            wait_for(lambda: deleted() >= 15 or first.proc.poll() is not None, 60, "15 deletions journaled")
            assert first.proc.poll() is None, f"the undo ended before the kill: {first.err[-2000:]}"
            first.signal(how)
            assert first.wait(30) == (-signal.SIGKILL if how == signal.SIGKILL else 130)
        quiet(sb)
        if how == signal.SIGTERM:
            # In-flight deletes finished, the report was written, the rest is not_attempted.
            counts = status_counts(results(tmp_path / "undo"))
            assert set(counts) == {"deleted", "not_attempted"} and sum(counts.values()) == rows
            assert counts["deleted"] == deleted()
            assert journal_query(journal, "SELECT state FROM runs WHERE command='undo'") == [("interrupted",)]
            assert journal_query(journal, "SELECT COUNT(*) FROM deletions WHERE state='deleting'") == [(0,)]

        # Nothing the kill cut off is lost: every record gone from the API is journaled as
        # deleted, or as deleting (its answer never read).
        in_api = {r["id"] for r in sb.records()}
        states = dict(journal_query(journal, "SELECT customer_payment_source_id, state FROM deletions") or [])
        created = {r["customer_payment_source_id"] for r in results(tmp_path / "run")}
        gone = created - in_api
        assert {k for k, v in states.items() if v == "deleted"} <= gone
        assert gone <= set(states)
        assert 15 <= len(gone) < rows
        if how == signal.SIGKILL:
            assert journal_query(journal, "SELECT state FROM runs WHERE command='undo'") == [("running",)]

        with importer_proc(argv, tmp_path, "second") as second:
            assert second.wait(120) == 0, second.err[-2000:]
        lines = results(tmp_path / "undo")
        assert len(lines) == rows and status_counts(lines) == {"deleted": rows}
        assert sb.records() == []
        log = [e for e in sb.requests_log()[before:] if e["path"].startswith("/api")]
        # Each record got exactly one DELETE the server processed (a 429 is refused, not processed).
        deletes = [e for e in log if e["method"] == "DELETE" and not e["rate_limited"]]
        assert len(deletes) == rows and {e["status"] for e in deletes} == {204}
        assert journal_query(journal, "SELECT COUNT(*) FROM runs WHERE command='undo'") == [(1,)]


def test_deletes_share_one_burst_window_and_meet_no_429(tmp_path: Path) -> None:
    # The burst window is per endpoint: `DELETE /api/customer_payment_sources/{id}`, whatever
    # the id. A low burst limit (and an average one that does not bind) shows it.
    rows = 30
    with SandboxThread(fast_settings(customers=CUSTOMERS, burst_limit=5, average_limit=600)) as sb:
        write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=rows)
        config = _config(sb, tmp_path, tmp_path / "journal.sqlite")
        code, _ = _run(tmp_path / "in.csv", config, tmp_path / "run")
        assert code == 0
        before = len(sb.requests_log())
        code, err = _undo(config, tmp_path / "undo", _run_id(tmp_path / "run"), "--yes")
        assert code == 0, err
        log = _api_log(sb, before)
        assert _count(log, "DELETE") == rows
        assert [e for e in log if e["rate_limited"]] == []
        assert summary(tmp_path / "undo")["rate_limited"] == 0


@pytest.mark.parametrize(("answer", "code", "left"), [(b"no\n", 2, 5), (b"yes\n", 0, 0)])
def test_on_a_terminal_undo_asks_naming_the_count_and_the_organization(
    sandbox: SandboxThread, tmp_path: Path, answer: bytes, code: int, left: int
) -> None:
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=5)
    config = _config(sandbox, tmp_path, tmp_path / "journal.sqlite")
    assert _run(tmp_path / "in.csv", config, tmp_path / "run")[0] == 0
    argv = ["undo", _run_id(tmp_path / "run"), "-c", str(config), "--report-dir", str(tmp_path / "undo")]
    main, terminal = pty.openpty()  # stdin is a terminal; the answer is typed into it
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "importer", *argv],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=clean_env(),
        )
        os.close(terminal)
        os.write(main, answer)
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(main)
    assert proc.returncode == code, err[-2000:]
    assert "importer undo will DELETE up to 5 wallet entries in 127.0.0.1" in out
    assert "Type 'yes' to go on: " in out
    assert len(sandbox.records()) == left
    if code == 2:  # stderr is not a terminal here: JSON lines only
        events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert {
            "event": "run.error",
            "error": "not confirmed; nothing was deleted",
            "exit_code": 2,
        }.items() <= (events[-1].items())


def test_undo_refuses_a_run_it_cannot_be_sure_of(sandbox: SandboxThread, tmp_path: Path) -> None:
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=3)
    journal = tmp_path / "journal.sqlite"
    config = _config(sandbox, tmp_path, journal)
    assert _run(tmp_path / "in.csv", config, tmp_path / "run")[0] == 0
    run_id = _run_id(tmp_path / "run")
    code, err = _undo(config, tmp_path / "u", "20990101T000000Z-abcdef", "--yes")
    assert code == 2
    assert f"run 20990101T000000Z-abcdef is not an `importer run` in journal {journal}; " in err
    assert f"the latest runs are: {run_id} (run)" in err
    # The run created its records in this sandbox; a config pointing elsewhere must not undo it.
    elsewhere = write_config(
        tmp_path / "elsewhere.yaml",
        dataclasses.replace(api_of(sandbox), base_url="http://127.0.0.1:9"),
        journal,
    )
    code, err = _undo(elsewhere, tmp_path / "u", run_id, "--yes")
    assert code == 2
    assert f"run {run_id} created its records in {sandbox.base_url}, but commercelayer.base_url is " in err
    assert len(sandbox.records()) == 3
    # No journal at all: say how to undo from the report instead.
    gone = _config(sandbox, tmp_path, tmp_path / "none.sqlite", name="none.yaml")
    code, err = _undo(gone, tmp_path / "u", run_id, "--yes")
    assert code == 2 and "undo from the run's report instead: importer undo --results PATH/results.csv" in err


def test_undo_of_an_imports_run_without_read_back_finds_each_record_by_its_pairing(tmp_path: Path) -> None:
    # `--strategy imports --no-readback` reports `created` rows without their ids: the undo finds
    # each record in its customer's wallet by pairing, then checks and deletes it as any other.
    from e2e_helpers import customers_for, write_id_pairs
    from run_helpers import run_import, sandbox_thread, settings_for

    from importer.runid import new_run_id
    from importer.undo import UndoOptions, execute_undo
    from importer.undo_plan import UndoSource

    rows = 60
    write_id_pairs(tmp_path / "in.csv", rows)
    with sandbox_thread(customers=customers_for(rows)) as sb:
        overrides = {"imports.poll_interval_s": 0.05, "imports.chunk_size": 25, "imports.readback": "none"}
        settings = settings_for(sb, tmp_path, strategy="imports", **overrides)
        run = run_import(settings, [tmp_path / "in.csv"], tmp_path / "run")
        assert run.exit_code == 0 and {
            r["customer_payment_source_id"] for r in results(tmp_path / "run")
        } == {""}
        assert len(sb.store.tables["customer_payment_sources"].rows) == rows
        before = len(sb.requests_log())
        undo = execute_undo(
            settings,
            UndoOptions(
                run_id=new_run_id(),
                source=UndoSource(run_id=run.summary["run_id"]),
                report_dir=tmp_path / "u",
            ),
        )
        assert undo.exit_code == 0
        lines = results(tmp_path / "u")
        assert status_counts(lines) == {"deleted": rows}
        assert all(r["customer_payment_source_id"] for r in lines)  # the ids it found are reported
        assert sb.store.tables["customer_payment_sources"].rows == {}
        log = _api_log(sb, before)
        assert _count(log, "DELETE") == rows
        # Per 25 rows: the customers' wallet pages and one ownership check; batched, never one a row.
        assert 6 <= _count(log, "GET") <= rows // 5


def test_undo_sends_nothing_while_a_run_holds_the_journal(sandbox: SandboxThread, tmp_path: Path) -> None:
    from importer.runlock import journal_lock

    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=3)
    journal = tmp_path / "journal.sqlite"
    config = _config(sandbox, tmp_path, journal)
    assert _run(tmp_path / "in.csv", config, tmp_path / "run")[0] == 0
    before = len(sandbox.requests_log())
    with journal_lock(journal, command="importer run in.csv"):
        code, err = _undo(config, tmp_path / "u", _run_id(tmp_path / "run"), "--yes")
    assert code == 2 and "is in use by pid" in err and "importer run in.csv" in err
    assert len(sandbox.records()) == 3 and _api_log(sandbox, before) == []
    # Released: the same command goes ahead.
    code, err = _undo(config, tmp_path / "u", _run_id(tmp_path / "run"), "--yes")
    assert code == 0, err
    assert sandbox.records() == []
