"""Issue 5, "Exactly once", end to end through `importer.cli.main` against the sandbox.

- the journal: where it lives, WAL, `sending` committed before a POST leaves, final states after;
- reruns with the journal, without it, and of a file that grew: nothing is created twice, and the
  look-ups that make that possible stay a small fraction of the requests;
- unknown outcomes (timeouts, dropped connections, 5xx, commit-then-fail): a POST is never sent
  again before a look-up of its customer's wallet;
- `importer report` rebuilds a run's report from the journal.
"""

from __future__ import annotations

import itertools
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from e2e_helpers import (
    api_of,
    cli,
    create_posts,
    journal_pairings,
    journal_query,
    rate_limit_for,
    record_key,
    results,
    run_argv,
    sample_keys,
    status_counts,
    summary,
    wait_for,
    write_config,
)

from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_SEED
from importer.sandbox.testing import SandboxThread, fast_settings
from importer.transport import AiohttpSender
from importer.wire import ApiRequest, ApiResponse, TransportFailure

ROWS = 100
CUSTOMERS = 72  # write_sample(..., 20, rows=150) grows the seed to this many customers


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    # Limits high enough that a run right after another never meets a 429 (a 429'd look-up is
    # sent again, and counts again): the look-up figures below are then exact.
    with SandboxThread(fast_settings(customers=CUSTOMERS, burst_limit=60, average_limit=600)) as sb:
        yield sb


def _config(
    sb: SandboxThread, tmp_path: Path, journal: Path, name: str = "config.yaml", **sections: Any
) -> Path:
    # A sandbox in a thread of this process shares its GIL: a wider margin (run_helpers explains).
    rate = rate_limit_for(
        sb.settings.time_scale,
        sb.settings.burst_limit_for("uncacheable"),
        sb.settings.average_limit_for("uncacheable"),
    ) | {"safety_margin_s": 0.15}
    return write_config(tmp_path / name, api_of(sb), journal, rate_limit=rate, **sections)


def _sample(tmp_path: Path, rows: int, name: str = "in.csv") -> tuple[Path, list[str]]:
    info = write_sample(tmp_path / name, DEMO_SEED, 20, rows=rows)
    assert info.customers <= CUSTOMERS
    return tmp_path / name, sample_keys(rows, 20)


def _keys_in_api(sb: SandboxThread) -> list[str]:
    return sorted(record_key(r) for r in sb.records())


# -- the journal ----------------------------------------------------------------------------------


@dataclass
class Spy:
    """Every request the importer's sender makes, in order, with what came back; and, for each
    POST, the journal state of its pairing at the moment it left."""

    journal: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    clock: int = 0

    def tick(self) -> int:
        self.clock += 1
        return self.clock


def _describe(request: ApiRequest) -> dict[str, Any]:
    if request.method == "POST" and request.body is not None:
        rel = request.body["data"]["relationships"]
        source = rel["payment_source"]["data"]
        customer = rel["customer"]["data"]["id"]
        return {"kind": "post", "customer": customer, "key": f"id:{customer}|{source['type']}:{source['id']}"}
    if request.path == "/api/customer_payment_sources":
        customers = parse_qs(request.query).get("filter[q][customer_id_in]", [""])[0].split(",")
        return {"kind": "wallet", "customers": set(customers)}
    return {"kind": "other"}


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Spy:
    recorder = Spy(tmp_path / "journal.sqlite")
    real_send = AiohttpSender.send

    async def send(self: AiohttpSender, request: ApiRequest, token: str) -> ApiResponse:
        event = _describe(request)
        if event["kind"] == "post":
            # A separate connection: only what the importer has committed is visible here.
            conn = sqlite3.connect(f"file:{recorder.journal}?mode=ro", uri=True)
            try:
                row = conn.execute(
                    "SELECT state FROM pairings WHERE pairing_key=?", (event["key"],)
                ).fetchone()
            finally:
                conn.close()
            event["journal_state_at_send"] = row[0] if row else None
        event["start"] = recorder.tick()
        recorder.events.append(event)
        try:
            response = await real_send(self, request, token)
        except TransportFailure as exc:
            event["result"] = exc.kind
            raise
        finally:
            event["end"] = recorder.tick()
        event["result"] = response.status
        return response

    monkeypatch.setattr(AiohttpSender, "send", send)
    return recorder


def test_journal_commits_sending_before_each_post_and_the_outcome_after(
    sandbox: SandboxThread, tmp_path: Path, spy: Spy
) -> None:
    source, keys = _sample(tmp_path, 30)
    journal = tmp_path / "journal.sqlite"
    out = cli(run_argv([source], _config(sandbox, tmp_path, journal), tmp_path / "rep"))
    assert out.code == 0, out.err[-2000:]
    posts = [e for e in spy.events if e["kind"] == "post"]
    assert len(posts) == 30
    assert all(e["journal_state_at_send"] == "sending" for e in posts)
    assert journal_pairings(journal) == dict.fromkeys(keys, "created")
    assert journal_query(journal, "PRAGMA journal_mode") == [("wal",)]
    # The rows table has each row's outcome; the pairings table the id the API gave.
    ids = dict(journal_query(journal, "SELECT pairing_key, customer_payment_source_id FROM pairings") or [])
    assert sorted(ids.values()) == sorted(r["id"] for r in sandbox.records())


def test_default_journal_path_is_stable_across_runs(
    sandbox: SandboxThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, _ = _sample(tmp_path, 20)
    config = _config(sandbox, tmp_path, tmp_path / "unused.sqlite")
    # Drop journal.path from the config: the default `.importer/journal.sqlite` applies.
    text = config.read_text(encoding="utf-8")
    config.write_text(
        "\n".join(
            line for line in text.splitlines() if "unused.sqlite" not in line and line.strip() != "journal:"
        )
        + "\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(tmp_path)
    first = cli(run_argv([source], config, tmp_path / "r1"))
    assert first.code == 0, first.err[-2000:]
    journal = tmp_path / ".importer" / "journal.sqlite"
    assert journal.is_file() and not (tmp_path / "unused.sqlite").exists()
    second = cli(run_argv([source], config, tmp_path / "r2"))
    assert second.code == 0
    assert status_counts(results(tmp_path / "r2")) == {"already_exists": 20}
    s = summary(tmp_path / "r2")
    assert s["posts"] == 0
    assert s["lookup_requests"] == 1  # settled from the journal: only the e-mails are resolved
    assert len(journal_query(journal, "SELECT run_id FROM runs") or []) == 2
    assert sandbox.stats()["duplicates"]["count"] == 0


# -- reruns ---------------------------------------------------------------------------------------


def test_rerun_with_and_without_the_journal_creates_nothing(sandbox: SandboxThread, tmp_path: Path) -> None:
    source, keys = _sample(tmp_path, ROWS)
    journal = tmp_path / "journal.sqlite"
    config = _config(sandbox, tmp_path, journal)
    first = cli(run_argv([source], config, tmp_path / "r1"))
    assert first.code == 0, first.err[-2000:]
    assert status_counts(results(tmp_path / "r1")) == {"created": ROWS}
    s1 = summary(tmp_path / "r1")
    assert s1["lookups_per_100_rows"] <= 5
    ids = {r["row_number"]: r["customer_payment_source_id"] for r in results(tmp_path / "r1")}

    # Same journal.
    again = cli(run_argv([source], config, tmp_path / "r2"))
    assert again.code == 0
    assert status_counts(results(tmp_path / "r2")) == {"already_exists": ROWS}
    s2 = summary(tmp_path / "r2")
    assert s2["posts"] == 0 and s2["lookups_per_100_rows"] <= 10

    # A fresh machine: the journal deleted (and its WAL files).
    for path in tmp_path.glob("journal.sqlite*"):
        path.unlink()
    fresh = cli(run_argv([source], config, tmp_path / "r3"))
    assert fresh.code == 0
    rows3 = results(tmp_path / "r3")
    assert status_counts(rows3) == {"already_exists": ROWS}
    assert {r["row_number"]: r["customer_payment_source_id"] for r in rows3} == ids
    s3 = summary(tmp_path / "r3")
    assert s3["posts"] == 0
    assert s3["lookup_requests"] > s2["lookup_requests"]  # the wallets had to be read this time
    assert s3["lookups_per_100_rows"] <= 10
    print(
        f"\nlook-ups per 100 rows: first run {s1['lookups_per_100_rows']}, rerun with the journal "
        f"{s2['lookups_per_100_rows']}, rerun without it {s3['lookups_per_100_rows']}"
    )

    assert _keys_in_api(sandbox) == sorted(keys)
    assert sandbox.stats()["duplicates"]["count"] == 0
    assert create_posts(sandbox.requests_log()) == {"201": ROWS}


@pytest.mark.parametrize("keep_journal", [True, False], ids=["same-journal", "no-journal"])
def test_a_nightly_file_that_grew_by_50_rows_creates_exactly_those(
    sandbox: SandboxThread, tmp_path: Path, keep_journal: bool
) -> None:
    small, _ = _sample(tmp_path, ROWS, "night1.csv")
    grown, keys = _sample(tmp_path, ROWS + 50, "night2.csv")
    journal = tmp_path / "journal.sqlite"
    config = _config(sandbox, tmp_path, journal)
    assert cli(run_argv([small], config, tmp_path / "r1")).code == 0
    if not keep_journal:
        shutil.rmtree(tmp_path / "r1")
        for path in tmp_path.glob("journal.sqlite*"):
            path.unlink()
    out = cli(run_argv([grown], config, tmp_path / "r2"))
    assert out.code == 0, out.err[-2000:]
    rows = results(tmp_path / "r2")
    assert [r["status"] for r in rows] == ["already_exists"] * ROWS + ["created"] * 50
    s = summary(tmp_path / "r2")
    # POSTs that reached the API (429s aside: the previous run filled the server's window).
    assert s["posts"] - s["rate_limited"] <= 50
    assert s["lookups_per_100_rows"] <= 10
    assert _keys_in_api(sandbox) == sorted(keys)
    assert sandbox.stats()["duplicates"]["count"] == 0
    assert create_posts(sandbox.requests_log()) == {"201": ROWS + 50}


# -- unknown outcomes -----------------------------------------------------------------------------


AMBIGUOUS = ("timeout", "connection")


def _is_ambiguous(result: object) -> bool:
    return result in AMBIGUOUS or (isinstance(result, int) and result >= 500)


def test_unknown_outcomes_are_looked_up_before_any_resend(
    sandbox: SandboxThread, tmp_path: Path, spy: Spy
) -> None:
    source, keys = _sample(tmp_path, 60)
    sandbox.set_faults(
        commit_then_fail=0.25,
        commit_then_fail_mode="mixed",
        error_5xx=0.15,
        slow_response=0.08,
        slow_response_s=0.8,
        connection_reset=0.05,
        fault_seed=11,
    )
    journal = tmp_path / "journal.sqlite"
    config = _config(
        sandbox,
        tmp_path,
        journal,
        retry={"max_attempts": 15, "base_delay_s": 0.02, "max_delay_s": 0.2},
        timeouts={"request_s": 0.4},
    )
    out = cli(run_argv([source], config, tmp_path / "rep"))
    assert out.code == 0, out.err[-3000:]
    assert status_counts(results(tmp_path / "rep")) == {"created": 60}
    stats = sandbox.stats()
    assert stats["duplicates"]["count"] == 0
    assert _keys_in_api(sandbox) == sorted(keys)
    faults = stats["faults"]
    assert faults["commit_then_fail"] > 0 and faults["error_5xx"] > 0 and faults["slow_response"] > 0

    # Every POST that created a record is accounted for: exactly one per pairing. A slow answer
    # the importer gave up on may still be held by the sandbox (its log entry comes when it ends).
    records = len(sandbox.records())
    wait_for(
        lambda: sum(create_posts(sandbox.requests_log())[k] for k in ("201", "commit_then_fail")) >= records,
        10,
        "the sandbox to log every POST that created a record",
    )
    log = sandbox.requests_log()
    posts = create_posts(log)
    slow_creates = sum(
        1
        for e in log
        if e["path"] == "/api/customer_payment_sources"
        and e["method"] == "POST"
        and e["status"] == 201
        and e["fault"] == "slow_response"
    )
    assert posts["201"] + posts["commit_then_fail"] == 60, str(
        Counter(
            (e["status"], e["fault"]) for e in log if e["method"] == "POST" and e["path"] != "/oauth/token"
        ).items()
    )
    # Each answer that was lost after the record was committed was settled by a look-up.
    assert summary(tmp_path / "rep")["ambiguous_outcomes"] == posts["commit_then_fail"] + slow_creates

    # The protocol, request by request: after a POST with an unknown outcome, the next POST of
    # the same pairing only leaves after a wallet look-up of its customer that started after
    # the unknown answer came back.
    by_key: dict[str, list[dict[str, Any]]] = {}
    for event in spy.events:
        if event["kind"] == "post":
            by_key.setdefault(event["key"], []).append(event)
    wallets = [e for e in spy.events if e["kind"] == "wallet"]
    resent = 0
    for key, sends in by_key.items():
        for before, after in itertools.pairwise(sends):
            if not _is_ambiguous(before.get("result")):
                continue
            resent += 1
            checked = [
                w
                for w in wallets
                if before["customer"] in w["customers"]
                and before["end"] < w["start"]
                and w["end"] < after["start"]
            ]
            assert checked, f"{key}: POST sent again after {before['result']} without a look-up"
        assert sum(1 for s in sends if s.get("result") == 201) <= 1
    assert resent > 0  # the faults did make the importer resend some POSTs (after checking)


# -- report rebuilt from the journal --------------------------------------------------------------


def test_report_is_rebuilt_from_the_journal(sandbox: SandboxThread, tmp_path: Path) -> None:
    source, _ = _sample(tmp_path, 20)
    journal = tmp_path / "journal.sqlite"
    config = _config(sandbox, tmp_path, journal)
    canary = cli(run_argv([source], config, tmp_path / "r1", "--max-rows", "5"))
    assert canary.code == 1, canary.err[-2000:]  # rows left not_attempted are not a success
    first_id = summary(tmp_path / "r1")["run_id"]
    assert cli(run_argv([source], config, tmp_path / "r2")).code == 0
    second_id = summary(tmp_path / "r2")["run_id"]
    assert first_id != second_id

    newest = cli(
        ["report", "--journal", str(journal), "-c", str(config), "--report-dir", str(tmp_path / "b2")]
    )
    assert newest.code == 0, newest.err
    assert results(tmp_path / "b2") == results(tmp_path / "r2")
    older = cli(
        [
            "report",
            "--journal",
            str(journal),
            "--run-id",
            first_id,
            "-c",
            str(config),
            "--report-dir",
            str(tmp_path / "b1"),
        ]
    )
    assert older.code == 0
    assert results(tmp_path / "b1") == results(tmp_path / "r1")
    assert status_counts(results(tmp_path / "b1")) == {"created": 5, "not_attempted": 15}
    assert summary(tmp_path / "b1")["run_id"] == first_id
    # A wrong run id or journal is a clear usage error, not a traceback.
    wrong = cli(["report", "--journal", str(journal), "--run-id", "nope", "-c", str(config)])
    assert wrong.code == 2 and "nope" in wrong.err and first_id in wrong.err
    missing = cli(["report", "--journal", str(tmp_path / "none.sqlite"), "-c", str(config)])
    assert missing.code == 2 and "none.sqlite" in missing.err and "Traceback" not in missing.err
