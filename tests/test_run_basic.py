"""End to end over real HTTP against the sandbox: the normal paths of `dispatch`."""

from __future__ import annotations

from pathlib import Path

from run_helpers import (
    created_count,
    duplicates,
    results,
    run_import,
    sandbox_thread,
    settings_for,
    statuses,
    write_csv,
)

from importer.journal import Journal
from importer.models import pairing_digest
from importer.sandbox.sample import write_sample
from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED


def test_happy_path_ids_and_emails(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=40)
    # Windows wide open: the rate limiter has its own test (test_run_throttle.py).
    with sandbox_thread(customers=info.customers, burst_limit=1000, average_limit=10000) as sb:
        out = run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        assert out.exit_code == 0
        assert statuses(tmp_path / "rep") == {"created": 40}
        assert created_count(sb) == 40 and duplicates(sb) == 0
        records = {r["id"]: r for r in sb.records()}
        rows = results(tmp_path / "rep")
        for row in rows:
            record = records[row["customer_payment_source_id"]]
            assert record["customer_id"] == row["customer_id"]
            assert record["payment_source_id"] == row["payment_source_id"]
            key = f"id:{row['customer_id']}|{row['payment_source_type']}:{row['payment_source_id']}"
            assert record["metadata"]["importer_key"] == pairing_digest(key)
        # Every other row named its customer by e-mail only; the run resolved them.
        assert sum(1 for r in rows if r["customer_email"]) == 20
        s = out.summary
        assert s["posts"] == 40 and s["rate_limited"] == 0 and s["tokens_fetched"] == 1
        assert s["lookup_requests"] == 2  # one e-mail batch (20 e-mails) + one wallet look-up
        assert s["lookups_per_100_rows"] <= 5.0
        assert s["requests"] == 1 + 40 + 2
        assert s["rows_settled"] == 40


def test_token_shape(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=20, shape="tokens")
    with sandbox_thread(customers=info.customers) as sb:
        out = run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        assert statuses(tmp_path / "rep") == {"created": 20}
        records = sb.records()
        assert len(records) == 20 and duplicates(sb) == 0
        assert all(
            r["payment_source_token"] and r["payment_method_id"] and r["customer_token"] for r in records
        )
        assert out.summary["lookup_requests"] == 1  # ids only: just the wallet look-up


def test_existing_entries_are_found_not_created_again(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=30)
    with sandbox_thread(customers=info.customers) as sb:
        first = run_import(settings_for(sb, tmp_path / "a"), [tmp_path / "in.csv"], tmp_path / "r1")
        assert first.summary["counts"]["created"] == 30
        # A fresh journal knows nothing: the wallet look-up finds every entry.
        second = run_import(settings_for(sb, tmp_path / "b"), [tmp_path / "in.csv"], tmp_path / "r2")
        assert statuses(tmp_path / "r2") == {"already_exists": 30}
        assert second.summary["posts"] == 0
        ids_before = {r["customer_payment_source_id"] for r in results(tmp_path / "r1")}
        assert {r["customer_payment_source_id"] for r in results(tmp_path / "r2")} == ids_before
        # The same journal again: settled from the journal, only the e-mails are looked up.
        third = run_import(settings_for(sb, tmp_path / "a"), [tmp_path / "in.csv"], tmp_path / "r3")
        assert statuses(tmp_path / "r3") == {"already_exists": 30}
        assert third.summary["posts"] == 0 and third.summary["lookup_requests"] == 1
        assert created_count(sb) == 30 and duplicates(sb) == 0


def test_validation_error_is_not_retried_and_names_the_pointer(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    customer = data.customers[0].id
    good = data.sources[0]
    write_csv(
        tmp_path / "in.csv",
        ["customer_id", "payment_source_type", "payment_source_id"],
        [[customer, good.type, good.id], [customer, "stripe_payments", "NoSuchId00"]],
    )
    with sandbox_thread() as sb:
        out = run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        assert out.exit_code == 1
        bad = results(tmp_path / "rep")[1]
        assert bad["status"] == "failed"
        assert (bad["http_status"], bad["error_code"], bad["attempts"]) == ("422", "VALIDATION_ERROR", "1")
        # The API's words, plus the type and id the relationship was sent with (issue 8). The type
        # was written exactly, so no hint that the id may be another type's.
        assert bad["error_detail"] == (
            "payment_source - must exist (at /data/relationships/payment_source) "
            "[payment_source sent as stripe_payments NoSuchId00]"
        )
        assert out.summary["retries"] == 0 and out.summary["posts"] == 2


def test_emails_unknown_and_resolved_duplicates(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    c0, c1 = data.customers[0], data.customers[1]
    s0 = next(s for s in data.sources if s.customer_id == c0.id)
    s1 = next(s for s in data.sources if s.customer_id == c1.id)
    write_csv(
        tmp_path / "in.csv",
        ["customer_id", "customer_email", "payment_source_type", "payment_source_id"],
        [
            [c0.id, "", s0.type, s0.id],
            ["", c0.email.upper(), s0.type, s0.id],  # the same pairing, by e-mail (in capitals)
            ["", "nobody@example.com", s1.type, s1.id],
            ["", c1.email, s1.type, s1.id],
            [c1.id, "", s1.type, s1.id],  # the same pairing as the row before, by id
        ],
    )
    with sandbox_thread() as sb:
        run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        rows = results(tmp_path / "rep")
        assert [r["status"] for r in rows] == [
            "created",
            "duplicate_in_file",
            "failed",
            "created",
            "duplicate_in_file",
        ]
        source = str(tmp_path / "in.csv")
        resolved = "once the e-mail was resolved, and the same payment source"
        assert rows[1]["error_detail"] == f"same customer as {source} row 2 {resolved}"
        assert rows[4]["error_detail"] == f"same customer as {source} row 5 {resolved}"
        assert (
            rows[2]["error_code"] == "CUSTOMER_NOT_FOUND" and "nobody@example.com" in rows[2]["error_detail"]
        )
        assert rows[3]["customer_id"] == c1.id
        assert created_count(sb) == 2


def test_dry_run_creates_nothing(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=20)
    with sandbox_thread(customers=info.customers) as sb:
        run_import(settings_for(sb, tmp_path / "a"), [tmp_path / "in.csv"], tmp_path / "r0", max_rows=5)
        out = run_import(
            settings_for(sb, tmp_path / "b"), [tmp_path / "in.csv"], tmp_path / "rep", dry_run=True
        )
        assert out.exit_code == 0
        assert statuses(tmp_path / "rep") == {"already_exists": 5, "would_create": 15}
        assert out.summary["posts"] == 0 and created_count(sb) == 5
        assert not (tmp_path / "b" / "journal.sqlite").exists()  # a dry run marks no pairing anywhere


def test_max_rows_creates_only_the_first_n(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=30)
    with sandbox_thread(customers=info.customers) as sb:
        out = run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep", max_rows=7)
        rows = results(tmp_path / "rep")
        assert [r["status"] for r in rows] == ["created"] * 7 + ["not_attempted"] * 23
        assert created_count(sb) == 7 and out.summary["posts"] == 7


def test_fail_fast_stops_taking_rows(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    rows = [[s.customer_id, s.type, s.id] for s in data.sources[:30]]
    rows[3] = [data.customers[0].id, "stripe_payments", "NoSuchId00"]
    write_csv(tmp_path / "in.csv", ["customer_id", "payment_source_type", "payment_source_id"], rows)
    with sandbox_thread() as sb:
        settings = settings_for(sb, tmp_path, concurrency=1)
        run_import(settings, [tmp_path / "in.csv"], tmp_path / "rep", fail_fast=True)
        counts = statuses(tmp_path / "rep")
        assert counts["failed"] == 1 and counts["created"] == 3 and counts["not_attempted"] == 26
        assert created_count(sb) == 3


def test_a_pairing_left_sending_is_settled_by_look_up(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=10)
    with sandbox_thread(customers=info.customers) as sb:
        run_import(settings_for(sb, tmp_path / "a"), [tmp_path / "in.csv"], tmp_path / "r1", max_rows=1)
        first = results(tmp_path / "r1")[0]
        # Journal b saw a crash mid-POST for that pairing: state `sending`, outcome unknown.
        journal = Journal.open(tmp_path / "b" / "journal.sqlite")
        key = f"id:{first['customer_id']}|{first['payment_source_type']}:{first['payment_source_id']}"
        journal.mark_sending(sb.base_url, key, "crashed-run", first["customer_id"])
        journal.close()
        out = run_import(settings_for(sb, tmp_path / "b"), [tmp_path / "in.csv"], tmp_path / "r2")
        rows = results(tmp_path / "r2")
        assert rows[0]["status"] == "already_exists"
        assert rows[0]["customer_payment_source_id"] == first["customer_payment_source_id"]
        assert out.summary["ambiguous_outcomes"] == 1
        assert created_count(sb) == 10 and duplicates(sb) == 0
