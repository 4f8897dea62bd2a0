"""Issue 11: `--strategy imports` end to end through the pipeline against the sandbox over HTTP.

Sizes are scaled down from the issue's (25,000 rows in 3 imports becomes 250 rows in chunks of
100): the paths exercised are the same, and the suite stays fast.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from e2e_helpers import customers_for, write_id_pairs
from run_helpers import created_count, duplicates, results, run_import, sandbox_thread, settings_for, statuses

from importer.bulk.records import BulkJournal, chunk_row
from importer.bulk.submit import import_body
from importer.journal import Journal
from importer.models import Pairing
from importer.planner import IMPORTER_KEY
from importer.sandbox.store import CPS, IMPORTS
from importer.sandbox.testing import SandboxThread
from importer.wire import JSONAPI

FAST = {"imports.poll_interval_s": 0.05, "imports.chunk_size": 100, "imports.sizing": "fixed"}


def imports_of(sb: SandboxThread) -> list[dict[str, Any]]:
    """In the order they were cut (their references end in the chunk number): imports are posted
    side by side, so the server may create them in another order."""
    rows = sb.store.tables[IMPORTS].rows.values()
    return sorted(rows, key=lambda r: (r["reference"] or "", r["created_at"], r["id"]))


def ids_by_key(sb: SandboxThread) -> dict[str, str]:
    return {r["metadata"][IMPORTER_KEY]: r["id"] for r in sb.store.tables[CPS].rows.values()}


def bulk_settings(sb: SandboxThread, tmp_path: Path, **overrides: Any) -> Any:
    return settings_for(sb, tmp_path, strategy="imports", **{**FAST, **overrides})


def test_three_imports_the_last_partial_then_a_rerun_creates_nothing(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 250)
    with sandbox_thread(customers=customers_for(250)) as sb:
        settings = bulk_settings(sb, tmp_path)
        first = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r1")
        assert first.exit_code == 0
        assert statuses(tmp_path / "r1") == {"created": 250}
        made = imports_of(sb)
        assert [i["inputs_size"] for i in made] == [100, 100, 50]
        run_id = first.summary["run_id"]
        references = [i["reference"] for i in made]
        assert len(set(references)) == 3 and all(r.startswith(f"importer-{run_id}-") for r in references)
        assert {i["skip_errors"] for i in made} == {False}
        # Every row has the id of the record that carries its importer_key.
        by_key = ids_by_key(sb)
        rows = results(tmp_path / "r1")
        assert sorted(r["customer_payment_source_id"] for r in rows) == sorted(by_key.values())
        assert created_count(sb) == 250 and duplicates(sb) == 0
        assert first.summary["imports"]["posted"] == 3
        assert first.summary["imports"]["rows_reconciled"] == 250
        # A first migration: the pre-check is one count read (no existing records, no export).
        assert (first.summary["imports"]["precheck"], first.summary["imports"]["precheck_requests"]) == (
            "one export",
            1,
        )

        again = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r2")
        assert again.exit_code == 0
        assert statuses(tmp_path / "r2") == {"already_exists": 250}
        assert again.summary["imports"]["posted"] == 0
        assert len(imports_of(sb)) == 3 and created_count(sb) == 250


def test_without_the_snapshot_the_precheck_reads_wallets_and_still_finds_existing(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 150)
    with sandbox_thread(customers=customers_for(150)) as sb:
        settings = bulk_settings(sb, tmp_path, **{"imports.precheck_snapshot_max": 0})
        first = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r1")
        assert first.exit_code == 0 and first.summary["imports"]["precheck"] == "wallet reads"
        assert first.summary["imports"]["precheck_requests"] >= 1  # the customers' wallets
        (tmp_path / "j2").mkdir()
        fresh = bulk_settings(sb, tmp_path / "j2", **{"imports.precheck_snapshot_max": 0})
        again = run_import(fresh, [tmp_path / "in.csv"], tmp_path / "r2")  # no journal: the API decides
        assert statuses(tmp_path / "r2") == {"already_exists": 150}
        assert again.summary["imports"]["posted"] == 0
        (tmp_path / "j3").mkdir()
        snapshot = run_import(bulk_settings(sb, tmp_path / "j3"), [tmp_path / "in.csv"], tmp_path / "r3")
        assert statuses(tmp_path / "r3") == {"already_exists": 150}
        assert snapshot.summary["imports"]["precheck"] == "one export"
        assert snapshot.summary["imports"]["exports_created"] == 1
        assert len(imports_of(sb)) == 2 and created_count(sb) == 150


def test_readback_through_exports_gives_the_same_ids(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 250)
    with sandbox_thread(customers=customers_for(250), export_max_records=60) as sb:
        settings = bulk_settings(
            sb, tmp_path, **{"imports.readback": "export", "imports.export_max_records": 60}
        )
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": 250}
        by_key = ids_by_key(sb)
        assert sorted(r["customer_payment_source_id"] for r in results(tmp_path / "r")) == sorted(
            by_key.values()
        )
        assert result.summary["imports"]["readback"] == "export"
        # Groups are cut to stay under the cap: several exports, none refused for size.
        assert result.summary["imports"]["exports_created"] >= 250 // 48
        assert all(e["records_count"] <= 60 for e in sb.store.tables["exports"].rows.values())


def test_an_expired_export_link_gets_a_new_export_then_falls_back(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 120)
    with sandbox_thread(customers=customers_for(120), export_link_ttl_s=1e-9) as sb:
        settings = bulk_settings(sb, tmp_path, **{"imports.readback": "export"})
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": 120}
        info = result.summary["imports"]
        assert info["export_links_expired"] >= 3  # every link expired; each time a new export
        assert info["exports_created"] == info["export_links_expired"]
        assert sorted(r["customer_payment_source_id"] for r in results(tmp_path / "r")) == sorted(
            ids_by_key(sb).values()
        )


def test_an_import_interrupted_by_errors_loses_no_row_and_maps_errors_log(tmp_path: Path) -> None:
    keys = write_id_pairs(tmp_path / "in.csv", 100)
    lines = (tmp_path / "in.csv").read_text().splitlines()
    bad = {5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}  # 12 % of the chunk: over the 10 % threshold
    for i in bad:
        cells = lines[i + 1].split(",")
        lines[i + 1] = ",".join(["XXXXXXXXXX", *cells[1:]])  # a customer that does not exist
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    with sandbox_thread(customers=customers_for(100), import_rows_per_s=2000.0) as sb:
        result = run_import(bulk_settings(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 1
        made = imports_of(sb)
        assert made[0]["status"] == "interrupted"
        assert [i["skip_errors"] for i in made[1:]] == [True] * (len(made) - 1)  # the rows sent again
        rows = results(tmp_path / "r")
        assert Counter(r["status"] for r in rows) == {"created": 88, "failed": 12}
        for i, row in enumerate(rows):
            if i in bad:
                assert row["error_code"] == "IMPORT_ROW_ERROR"
                assert "must exist" in row["error_detail"] and "refused the row" in row["error_detail"]
            else:
                assert row["status"] == "created" and row["customer_payment_source_id"]
        assert created_count(sb) == 88 and duplicates(sb) == 0
        assert result.summary["imports"]["rows_resent"] > 0
        assert len(keys) == 100


def test_a_lost_answer_is_looked_up_by_reference_and_never_posted_twice(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 250)
    with sandbox_thread(customers=customers_for(250), imports_lost_answer=1.0) as sb:
        result = run_import(bulk_settings(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": 250}
        assert len(imports_of(sb)) == 3  # every answer was lost, every import found by reference
        assert result.summary["imports"]["lost_answers"] == 3
        assert created_count(sb) == 250 and duplicates(sb) == 0


def test_a_5xx_before_the_import_exists_is_looked_up_then_sent_again(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 250)
    with sandbox_thread(customers=customers_for(250), imports_error_5xx=0.5, fault_seed=3) as sb:
        # Imports are posted side by side, so which POST meets which fault varies from run to
        # run: enough attempts that no import runs out of them on a coin-flip fault.
        settings = bulk_settings(sb, tmp_path, **{"retry.max_attempts": 12})
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": 250}
        assert sb.stats()["faults"].get("imports_error_5xx", 0) >= 1
        assert len(imports_of(sb)) == 3 and created_count(sb) == 250 and duplicates(sb) == 0


def test_429s_while_polling_pause_polling_and_the_run_goes_on(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 250)
    # The server allows 2 cacheable reads per endpoint window; the client is told far more.
    with sandbox_thread(customers=customers_for(250), cacheable_burst_test=2, import_rows_per_s=400.0) as sb:
        settings = bulk_settings(
            sb, tmp_path, **{"imports.cacheable_burst": 1000, "imports.cacheable_average": 10000}
        )
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": 250}
        polled_429 = [
            e for e in sb.requests_log() if e["path"].startswith("/api/imports") and e["status"] == 429
        ]
        assert polled_429, "the test needs 429s on the polls"
        assert result.summary["imports"]["poll_pauses"] >= 1
        assert created_count(sb) == 250 and duplicates(sb) == 0


def test_a_chunk_refused_as_too_large_is_halved(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 100)
    with sandbox_thread(customers=customers_for(100), import_max_inputs=30) as sb:
        result = run_import(bulk_settings(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": 100}
        assert all(i["inputs_size"] <= 30 for i in imports_of(sb))
        assert sum(i["inputs_size"] for i in imports_of(sb)) == 100
        assert result.summary["imports"]["split_as_too_large"] >= 2
        assert created_count(sb) == 100 and duplicates(sb) == 0


def test_auto_switches_at_the_threshold(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "small.csv", 59)
    write_id_pairs(tmp_path / "big.csv", 60)
    with sandbox_thread(customers=customers_for(120)) as sb:
        below = settings_for(sb, tmp_path / "a", strategy="auto", **{**FAST, "imports.auto_threshold": 60})
        (tmp_path / "a").mkdir()
        assert run_import(below, [tmp_path / "small.csv"], tmp_path / "r1").exit_code == 0
        assert imports_of(sb) == [] and created_count(sb) == 59
        sb.reset()
        (tmp_path / "b").mkdir()
        above = settings_for(sb, tmp_path / "b", strategy="auto", **{**FAST, "imports.auto_threshold": 60})
        result = run_import(above, [tmp_path / "big.csv"], tmp_path / "r2")
        assert result.exit_code == 0 and result.summary["strategy"] == "imports"
        assert len(imports_of(sb)) == 1 and created_count(sb) == 60


def test_no_readback_says_plainly_that_ids_were_not_read_back(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 150)
    with sandbox_thread(customers=customers_for(150)) as sb:
        settings = bulk_settings(sb, tmp_path, **{"imports.readback": "none"})
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": 150}
        assert {r["customer_payment_source_id"] for r in results(tmp_path / "r")} == {""}
        assert result.summary["imports"]["ids_read_back"] is False
        assert "not read back" in result.summary["notice"]
        assert result.summary["imports"]["readback_requests"] == 0


def test_imports_start_while_the_input_is_still_being_read(tmp_path: Path) -> None:
    # The first chunk is 10 % of the file: it is posted long before the last row is read.
    rows = 10_000
    write_id_pairs(tmp_path / "in.csv", rows)
    with sandbox_thread(customers=customers_for(rows), import_rows_per_s=20000.0) as sb:
        settings = bulk_settings(sb, tmp_path, **{"imports.chunk_size": 1000, "imports.readback": "export"})
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": rows}
        assert result.summary["imports"]["posted_while_reading"] >= 1
        assert result.summary["rows_total"] == rows
        assert created_count(sb) == rows and duplicates(sb) == 0


def test_a_streamed_input_over_the_invalid_ratio_exits_2_and_sends_nothing_twice(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 1000)
    with open(tmp_path / "in.csv", "a", encoding="utf-8") as fh:
        fh.writelines(f"cus{i},stripe_payments,\n" for i in range(3000))  # no payment_source_id: invalid
    with sandbox_thread(customers=customers_for(1000), import_rows_per_s=20000.0) as sb:
        result = run_import(bulk_settings(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 2
        assert "max_invalid_ratio" in (result.message or "")
        counts = statuses(tmp_path / "r")
        assert counts["invalid"] == 3000
        assert counts.get("created", 0) + counts.get("not_attempted", 0) == 1000
        assert created_count(sb) == counts.get("created", 0) and duplicates(sb) == 0


def test_unmappable_errors_log_keys_do_not_matter_for_reconciliation(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 100)
    lines = (tmp_path / "in.csv").read_text().splitlines()
    bad = set(range(20, 32))  # 12 % of the chunk
    for i in bad:
        lines[i + 1] = ",".join(["XXXXXXXXXX", *lines[i + 1].split(",")[1:]])
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    with sandbox_thread(customers=customers_for(100), import_errors_log_keys="opaque") as sb:
        result = run_import(bulk_settings(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 1
        rows = results(tmp_path / "r")
        for i, row in enumerate(rows):
            if i in bad:
                assert row["status"] == "failed" and row["error_code"] == "IMPORT_ROW_FAILED"
                assert "errors_log:" in row["error_detail"] and "must exist" in row["error_detail"]
            else:
                assert row["status"] == "created" and row["customer_payment_source_id"]
        assert created_count(sb) == 88 and duplicates(sb) == 0


def test_max_rows_caps_the_rows_sent_through_imports(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 250)
    with sandbox_thread(customers=customers_for(250)) as sb:
        result = run_import(bulk_settings(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "r", max_rows=120)
        assert result.exit_code == 1  # not_attempted rows, as with REST
        assert statuses(tmp_path / "r") == {"created": 120, "not_attempted": 130}
        assert [i["inputs_size"] for i in imports_of(sb)] == [100, 20]
        assert created_count(sb) == 120


def _post_import(sb: SandboxThread, body: dict[str, Any]) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    grant = {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret}
    req = urllib.request.Request(sb.auth_url, data=json.dumps(grant).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with opener.open(req, timeout=30) as response:
        token = json.loads(response.read())["access_token"]
    req = urllib.request.Request(f"{sb.base_url}/api/imports", data=json.dumps(body).encode(), method="POST")
    for name, value in (("Authorization", f"Bearer {token}"), ("Accept", JSONAPI), ("Content-Type", JSONAPI)):
        req.add_header(name, value)
    with opener.open(req, timeout=30) as response:
        return int(response.status)


def test_an_import_left_by_a_run_abandoned_mid_intake_is_waited_for_not_duplicated(tmp_path: Path) -> None:
    keys = write_id_pairs(tmp_path / "in.csv", 60)
    with sandbox_thread(customers=customers_for(60), import_rows_per_s=30.0) as sb:
        settings = bulk_settings(sb, tmp_path)
        # A run killed while it was still reading its input, after it had posted one import
        # whose answer it never got: the journal has the import as `posting`, no rows.
        journal = Journal.open(settings.journal.path)
        journal.start_run("OLD", command="run", target=sb.base_url, inputs_fingerprint="another-input")
        rows = []
        for seq, line in enumerate((tmp_path / "in.csv").read_text().splitlines()[1:]):
            customer, type_, source = line.split(",")
            pairing = Pairing(customer_id=customer, customer_email=None, payment_source_type=type_,
                              payment_source_id=source)  # fmt: skip
            rows.append(chunk_row(seq, pairing, customer, pairing.key(customer)))
        reference = BulkJournal(journal).new_chunk("OLD", sb.base_url, rows, 0)
        journal.close()
        body = import_body(reference, [r.input for r in rows], skip_errors=False, origin="importer")
        assert _post_import(sb, body) == 201
        assert imports_of(sb)[0]["status"] in ("pending", "in_progress")

        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0
        assert statuses(tmp_path / "r") == {"already_exists": 60}  # made by the earlier run's import
        assert len(imports_of(sb)) == 1 and imports_of(sb)[0]["status"] == "completed"
        assert created_count(sb) == 60 and duplicates(sb) == 0
        assert sorted(r["customer_payment_source_id"] for r in results(tmp_path / "r")) == sorted(
            ids_by_key(sb).values()
        )
        assert len(keys) == 60


def test_the_samples_with_e_mail_rows_give_the_same_result_through_imports_and_rest(tmp_path: Path) -> None:
    samples = Path(__file__).resolve().parent.parent / "samples"
    outcomes: dict[str, dict[str, int]] = {}
    for strategy in ("rest", "imports"):
        with sandbox_thread(customers=50, seed=42) as sb:
            (tmp_path / strategy).mkdir()
            settings = settings_for(sb, tmp_path / strategy, strategy=strategy, **FAST)
            run_import(settings, [samples], tmp_path / strategy / "r")
            outcomes[strategy] = statuses(tmp_path / strategy / "r")
            assert duplicates(sb) == 0
            if strategy == "imports":
                assert len(imports_of(sb)) >= 1
    assert outcomes["imports"] == outcomes["rest"]
    assert outcomes["imports"].get("created", 0) > 0


def test_fail_fast_posts_no_import_after_the_one_with_the_first_failure(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 250)
    lines = (tmp_path / "in.csv").read_text().splitlines()
    lines[3] = ",".join(["XXXXXXXXXX", *lines[3].split(",")[1:]])  # row 4 (seq 2): unknown customer
    (tmp_path / "in.csv").write_text("\n".join(lines) + "\n")
    with sandbox_thread(customers=customers_for(250)) as sb:
        settings = bulk_settings(sb, tmp_path, **{"imports.max_in_flight": 1})
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r", fail_fast=True)
        assert result.exit_code == 1
        assert statuses(tmp_path / "r") == {"created": 99, "failed": 1, "not_attempted": 150}
        assert len(imports_of(sb)) == 1
        assert result.summary["fail_fast_stopped_at"]["row"] == 4
        stopped = [r for r in results(tmp_path / "r") if r["status"] == "not_attempted"]
        assert all("--fail-fast stopped the run" in r["error_detail"] for r in stopped)


def test_an_imports_run_leaves_send_stamps_for_the_next_process(tmp_path: Path) -> None:
    """A rerun or an undo right after an imports run starts with the server's windows as that run
    left them (docs/rate-limits.md), as after a REST run: every write and uncacheable read is
    stamped in the journal; polls spend the cacheable budget and are not."""
    write_id_pairs(tmp_path / "in.csv", 120)
    with sandbox_thread(customers=customers_for(120)) as sb:
        settings = bulk_settings(sb, tmp_path)
        run = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r1")
        assert run.exit_code == 0
        api = [e for e in sb.requests_log() if e["path"].startswith("/api")]
    journal = Journal.open(settings.journal.path)
    try:
        stamps = Counter(endpoint for endpoint, _ in journal.recent_send_stamps(sb.base_url, 0.0))
    finally:
        journal.close()
    posted = sum(1 for e in api if e["method"] == "POST" and e["path"] == "/api/imports")
    polls = sum(1 for e in api if e["method"] == "GET" and e["path"].startswith("/api/imports/"))
    assert posted == 2 and polls > 0
    assert stamps["POST /api/imports"] == posted
    assert not [endpoint for endpoint in stamps if endpoint.startswith("GET /api/imports")]


def test_export_polls_share_one_burst_window_and_meet_no_429(tmp_path: Path) -> None:
    """The server counts every export's polls under one endpoint (`/api/exports/{id}`): a client
    that kept a window per export id sent 51 polls in a 10 s window of 50 (bench, 100,000 rows)."""
    write_id_pairs(tmp_path / "in.csv", 360)
    with sandbox_thread(customers=customers_for(360), export_max_records=30, export_records_per_s=100) as sb:
        settings = bulk_settings(
            sb,
            tmp_path,
            **{"imports.readback": "export", "imports.export_max_records": 30, "imports.chunk_size": 360},
        )
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": 360}
        log = sb.requests_log()
        polls = [e for e in log if e["method"] == "GET" and e["path"].startswith("/api/exports/")]
        # Enough polls that a window per export would have gone past the burst limit.
        assert len(polls) > sb.settings.burst_limit_for("uncacheable")
        assert [e for e in log if e["rate_limited"]] == []


def test_adaptive_sizing_starts_small_stays_under_the_cap_and_creates_each_row_once(tmp_path: Path) -> None:
    write_id_pairs(tmp_path / "in.csv", 600)
    with sandbox_thread(customers=customers_for(600), import_rows_per_s=2_000) as sb:
        settings = bulk_settings(
            sb,
            tmp_path,
            **{"imports.sizing": "adaptive", "imports.chunk_size": 200, "imports.min_chunk_size": 50},
        )
        result = run_import(settings, [tmp_path / "in.csv"], tmp_path / "r")
        assert result.exit_code == 0 and statuses(tmp_path / "r") == {"created": 600}
        sizes = [i["inputs_size"] for i in imports_of(sb)]
        # The first import is small: the ramp (50) while rows are still being read, or a tenth of
        # the rows (60) when the whole file was read first; never a full chunk of 200.
        assert sizes[0] in (50, 60)
        assert max(sizes) <= 200 and sum(sizes) == 600
        assert created_count(sb) == 600 and duplicates(sb) == 0
        assert len(set(ids_by_key(sb).values())) == 600
