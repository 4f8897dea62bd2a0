"""--dry-run checks that payment sources and payment methods exist, in batched look-ups per
type, over real HTTP against the sandbox: `would_create` then means the row would be created."""

from __future__ import annotations

from pathlib import Path

from run_helpers import created_count, results, run_import, sandbox_thread, settings_for, write_csv

from importer.existence import BATCH, ids_found, ids_request, wanted
from importer.models import Pairing
from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED

HEADER = ["customer_id", "payment_source_type", "payment_source_id"]


def test_a_missing_payment_source_is_not_would_create(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    rows = [[s.customer_id, s.type, s.id] for s in data.sources[:12]]
    rows[4] = [rows[4][0], rows[4][1], "NoSuchId00"]  # row 6: that source does not exist
    source = write_csv(tmp_path / "in.csv", HEADER, rows)
    with sandbox_thread() as sb:
        before = len(sb.requests_log())
        out = run_import(settings_for(sb, tmp_path), [source], tmp_path / "rep", dry_run=True)
        log = sb.requests_log()[before:]
        assert created_count(sb) == 0
    got = results(tmp_path / "rep")
    assert [r["status"] for r in got].count("would_create") == 11
    assert got[4]["status"] == "failed" and got[4]["error_code"] == "PAYMENT_SOURCE_NOT_FOUND"
    assert got[4]["error_detail"].startswith("payment_source_id not found: no ")
    assert "NoSuchId00" in got[4]["error_detail"]
    assert out.exit_code == 1
    # One look-up per payment source type in the input (12 ids of a type fit in one request).
    types = {r[1] for r in rows}
    checks = [
        e for e in log if e["method"] == "GET" and e["path"].split("?")[0] in {f"/api/{t}" for t in types}
    ]
    assert len(checks) == len(types)
    assert out.summary["existence_lookup_requests"] == len(types)
    assert out.summary["posts"] == 0


def test_a_real_run_spends_no_existence_look_ups(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    rows = [[s.customer_id, s.type, s.id] for s in data.sources[:5]]
    source = write_csv(tmp_path / "in.csv", HEADER, rows)
    with sandbox_thread() as sb:
        out = run_import(settings_for(sb, tmp_path), [source], tmp_path / "rep")
        assert created_count(sb) == 5
    assert out.summary["existence_lookup_requests"] == 0


def test_a_missing_payment_method_of_a_token_row_is_reported(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    method = data.payment_methods[0]
    header = ["customer_id", "payment_source_token", "payment_method_id"]
    rows = [
        [data.customers[0].id, "tok_dry_run_1", method.id],
        [data.customers[1].id, "tok_dry_run_2", "NoMethod00"],
        [data.customers[2].id, "tok_dry_run_3", ""],  # a bare token: nothing to check
    ]
    source = write_csv(tmp_path / "in.csv", header, rows)
    with sandbox_thread() as sb:
        out = run_import(settings_for(sb, tmp_path), [source], tmp_path / "rep", dry_run=True)
    got = results(tmp_path / "rep")
    assert [r["status"] for r in got] == ["would_create", "failed", "would_create"]
    assert got[1]["error_code"] == "PAYMENT_METHOD_NOT_FOUND" and "NoMethod00" in got[1]["error_detail"]
    assert out.summary["existence_lookup_requests"] == 1


def test_requests_are_batched_by_at_most_25_ids() -> None:
    ids = [f"ID{n:08d}" for n in range(BATCH)]
    request = ids_request("stripe_payments", ids)
    assert request.method == "GET" and request.path == "/api/stripe_payments"
    assert "filter%5Bq%5D%5Bid_in%5D=" + ",".join(ids) in request.query
    assert "page%5Bsize%5D=25" in request.query and BATCH == 25
    assert ids_found({"data": [{"id": "a"}, {"id": 3}, "x"]}) == {"a"}
    assert wanted(Pairing("C", None, payment_source_token="t")) == []


def test_a_capped_dry_run_checks_only_the_rows_it_would_send(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    rows = [[s.customer_id, s.type, s.id] for s in data.sources[:12]]
    assert len({r[1] for r in rows}) > 1  # several types: unchecked ones would cost requests
    source = write_csv(tmp_path / "in.csv", HEADER, rows)
    with sandbox_thread() as sb:
        out = run_import(settings_for(sb, tmp_path), [source], tmp_path / "rep", dry_run=True, max_rows=1)
    assert [r["status"] for r in results(tmp_path / "rep")] == ["would_create"] + ["not_attempted"] * 11
    assert out.summary["existence_lookup_requests"] == 1
