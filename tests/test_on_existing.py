"""Issue 12, `on_existing: update` (`run --on-existing update`) end to end against the sandbox, and
the pure rules of corrections.py: PATCH only what differs, metadata merged key by key, the
importer_key never touched, identical values send nothing."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from e2e_helpers import (
    api_json,
    api_of,
    cli,
    rate_limit_for,
    results,
    run_argv,
    status_counts,
    summary,
    write_config,
)

from importer.corrections import correction, update_request
from importer.lookups import WalletEntry, wallet_by_customers
from importer.models import Pairing
from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_SEED
from importer.sandbox.testing import SandboxThread, fast_settings
from importer.undo_plan import ownership_problem

# -- the pure rules ---------------------------------------------------------------------------------


def _pairing(**kw: Any) -> Pairing:
    return Pairing(customer_id="C000000001", customer_email=None, payment_source_type="stripe_payments",
                   payment_source_id="S000000001", **kw)  # fmt: skip


def _entry(**kw: Any) -> WalletEntry:
    seen = frozenset(("reference", "reference_origin", "metadata"))
    return WalletEntry("R000000001", "C000000001", ("stripe_payments:S000000001",), seen=seen, **kw)


def test_identical_values_need_no_patch() -> None:
    entry = _entry(reference="r1", reference_origin="o", metadata={"importer_key": "k", "batch": "b1"})
    assert correction(_pairing(reference="r1", reference_origin="o", metadata={"batch": "b1"}), entry) is None


def test_an_empty_cell_is_no_opinion() -> None:
    assert correction(_pairing(), _entry(reference="r1", metadata={"importer_key": "k"})) is None


def test_only_what_differs_is_sent_and_metadata_is_merged_key_by_key() -> None:
    entry = _entry(
        reference="old", reference_origin="o", metadata={"importer_key": "k", "note": "x", "batch": "b1"}
    )
    fix = correction(
        _pairing(reference="new", reference_origin="o", metadata={"batch": "b2", "tier": "gold"}), entry
    )
    assert fix is not None
    assert fix.attributes == {
        "reference": "new",
        "metadata": {"importer_key": "k", "note": "x", "batch": "b2", "tier": "gold"},
    }
    assert fix.label == "reference;metadata.batch;metadata.tier"
    request = update_request("R000000001", fix)
    assert (request.method, request.path) == ("PATCH", "/api/customer_payment_sources/R000000001")
    assert request.body == {
        "data": {"type": "customer_payment_sources", "id": "R000000001", "attributes": fix.attributes}
    }


def test_the_importer_key_is_never_added_changed_or_removed() -> None:
    # The row's own importer_key never overwrites the record's, nor claims a record that has none.
    assert (
        correction(_pairing(metadata={"importer_key": "mine"}), _entry(metadata={"importer_key": "k"}))
        is None
    )
    assert correction(_pairing(metadata={"importer_key": "mine"}), _entry(metadata={})) is None
    fix = correction(
        _pairing(metadata={"importer_key": "mine", "a": "1"}), _entry(metadata={"importer_key": "k"})
    )
    assert fix is not None and fix.attributes == {"metadata": {"importer_key": "k", "a": "1"}}


def test_metadata_the_answer_left_out_is_not_overwritten() -> None:
    assert correction(_pairing(metadata={"a": "1"}), _entry(metadata=None)) is None


def test_attributes_a_sparse_fieldset_left_out_are_not_patched() -> None:
    entry = WalletEntry("R000000001", "C000000001", ("stripe_payments:S000000001",), seen=frozenset())
    assert correction(_pairing(reference="r", reference_origin="o", metadata={"a": "1"}), entry) is None


def test_ownership_problem() -> None:
    assert ownership_problem({"importer_key": "k"}, "k") is None
    assert "no metadata.importer_key" in (ownership_problem({}, "k") or "")
    assert "is other, not k" in (ownership_problem({"importer_key": "other"}, "k") or "")


# -- against the sandbox ----------------------------------------------------------------------------


@pytest.fixture
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(fast_settings(customers=72, burst_limit=60, average_limit=600)) as sb:
        yield sb


def _write(path: Path, rows: list[dict[str, str]]) -> Path:
    header = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _patches(sb: SandboxThread, since: int) -> int:
    return sum(1 for e in sb.requests_log()[since:] if e["method"] == "PATCH")


def _posts(sb: SandboxThread, since: int) -> int:
    return sum(1 for e in sb.requests_log()[since:] if e["method"] == "POST" and e["path"].startswith("/api"))


def test_on_existing_update_patches_what_differs_then_a_rerun_sends_nothing(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    write_sample(tmp_path / "sample.csv", DEMO_SEED, 20, rows=10)
    with open(tmp_path / "sample.csv", newline="", encoding="utf-8") as fh:
        base = [{**r, "metadata.batch": "b1"} for r in csv.DictReader(fh)]
    rate = rate_limit_for(1.0, 60, 600) | {"burst_window_s": sandbox.settings.burst_window,
                                           "average_window_s": sandbox.settings.average_window,
                                           "safety_margin_s": 0.15}  # fmt: skip
    config = write_config(
        tmp_path / "config.yaml", api_of(sandbox), tmp_path / "journal.sqlite", rate_limit=rate
    )
    assert cli(run_argv([_write(tmp_path / "v1.csv", base)], config, tmp_path / "r1")).code == 0
    ids = [r["customer_payment_source_id"] for r in results(tmp_path / "r1")]
    by_id = {r["id"]: r for r in sandbox.records()}
    key0 = by_id[ids[0]]["metadata"]["importer_key"]
    # Someone added a key of their own to the third record: an update must keep it.
    body = {"data": {"type": "customer_payment_sources", "id": ids[2],
                     "attributes": {"metadata": {**by_id[ids[2]]["metadata"], "note": "kept"}}}}  # fmt: skip
    assert api_json(sandbox, "PATCH", f"/api/customer_payment_sources/{ids[2]}", body)[0] == 200

    v2 = [dict(r) for r in base]
    v2[0]["reference"] = "corrected-1"
    v2[1]["metadata.batch"] = "b2"
    v2[2]["metadata.tier"] = "gold"
    corrected = _write(tmp_path / "v2.csv", v2)

    # The default (skip) leaves them as they are, as before.
    before = len(sandbox.requests_log())
    assert cli(run_argv([corrected], config, tmp_path / "skip")).code == 0
    assert status_counts(results(tmp_path / "skip")) == {"already_exists": 10}
    assert _patches(sandbox, before) == 0

    # A dry run says what would change, and changes nothing.
    before = len(sandbox.requests_log())
    assert (
        cli(run_argv([corrected], config, tmp_path / "dry", "--dry-run", "--on-existing", "update")).code == 0
    )
    dry = results(tmp_path / "dry")
    assert status_counts(dry) == {"would_update": 3, "already_exists": 7}
    assert [r["changed_fields"] for r in dry[:3]] == ["reference", "metadata.batch", "metadata.tier"]
    assert _patches(sandbox, before) == 0

    before = len(sandbox.requests_log())
    assert cli(run_argv([corrected], config, tmp_path / "upd", "--on-existing", "update")).code == 0
    lines = results(tmp_path / "upd")
    assert [r["status"] for r in lines] == ["updated"] * 3 + ["already_exists"] * 7
    assert [r["changed_fields"] for r in lines] == ["reference", "metadata.batch", "metadata.tier"] + [""] * 7
    assert [r["customer_payment_source_id"] for r in lines] == ids
    assert _patches(sandbox, before) == 3 and _posts(sandbox, before) == 0
    assert summary(tmp_path / "upd")["patches"] == 3 and summary(tmp_path / "upd")["counts"]["updated"] == 3
    now = {r["id"]: r for r in sandbox.records()}
    assert now[ids[0]]["reference"] == "corrected-1"
    assert now[ids[0]]["metadata"] == {"importer_key": key0, "batch": "b1"}
    assert now[ids[1]]["metadata"]["batch"] == "b2"
    third = now[ids[2]]["metadata"]
    assert third == {"importer_key": by_id[ids[2]]["metadata"]["importer_key"], "batch": "b1", "note": "kept",
                     "tier": "gold"}  # fmt: skip
    assert {r["id"]: r for r in sandbox.records()}.keys() == by_id.keys()  # nothing created

    # The same corrected file again: every value already agrees, not a single PATCH.
    before = len(sandbox.requests_log())
    assert cli(run_argv([corrected], config, tmp_path / "again", "--on-existing", "update")).code == 0
    assert status_counts(results(tmp_path / "again")) == {"already_exists": 10}
    assert _patches(sandbox, before) == 0 and _posts(sandbox, before) == 0


def test_only_update_mode_asks_the_wallet_look_up_for_the_values_it_compares() -> None:
    skip = parse_qs(wallet_by_customers(["C000000001"]).query)
    update = parse_qs(wallet_by_customers(["C000000001"], values=True).query)
    assert skip["fields[customer_payment_sources]"] == ["payment_source_token,customer,payment_source"]
    assert update["fields[customer_payment_sources]"] == [
        "payment_source_token,customer,payment_source,reference,reference_origin,metadata"
    ]
    assert {k: v for k, v in update.items() if not k.startswith("fields")} == {
        k: v for k, v in skip.items() if not k.startswith("fields")
    }


def test_update_mode_takes_the_rest_path_even_when_imports_are_asked_for(tmp_path: Path) -> None:
    from importer.bulk import select_dispatch
    from importer.config import load_settings
    from importer.dispatcher import dispatch
    from importer.journal import Journal

    journal = Journal.open(tmp_path / "j.sqlite")
    try:
        for strategy in ("imports", "auto"):
            overrides = {"strategy": strategy, "on_existing": "update", "imports.auto_threshold": 1}
            settings, _ = load_settings(None, overrides=overrides, env={})
            assert select_dispatch(settings, journal, "run-1", 5000, dry_run=False) is dispatch
        settings, _ = load_settings(None, overrides={"strategy": "imports"}, env={})
        assert select_dispatch(settings, journal, "run-1", 5000, dry_run=False) is not dispatch
    finally:
        journal.close()
