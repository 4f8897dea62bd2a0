"""The pure parts of the imports strategy: inputs, names, strategy choice, errors_log, reconcile."""

from __future__ import annotations

from pathlib import Path

from importer.bulk.chunking import (
    choose_strategy,
    chunk_reference,
    cut,
    halves,
    import_input,
    is_queue_full,
    is_too_large,
    rest_estimate_s,
)
from importer.bulk.readback import found_in_export, parse_attachment
from importer.bulk.reconcile import Found, map_errors, reconcile
from importer.bulk.records import ChunkRow, chunk_row
from importer.models import Pairing, RowStatus
from importer.planner import create_body, importer_key


def _pairing(n: int, **extra: object) -> Pairing:
    return Pairing(
        customer_id=f"cus{n}",
        customer_email=None,
        payment_source_type="stripe_payments",
        payment_source_id=f"src{n}",
        reference=f"ref-{n}",
        **extra,  # type: ignore[arg-type]
    )


def _rows(n: int) -> list[ChunkRow]:
    return [chunk_row(i, p, f"cus{i}", p.key(f"cus{i}")) for i, p in ((i, _pairing(i)) for i in range(n))]


def test_an_input_carries_relationship_ids_tokens_and_the_rest_bodys_metadata() -> None:
    by_id = _pairing(1, payment_method_id="pm1", reference_origin="crm", metadata={"a": 1})
    item = import_input(by_id, "cus1")
    assert item == {
        "customer_id": "cus1",
        "payment_source_type": "stripe_payments",
        "payment_source_id": "src1",
        "payment_method_id": "pm1",
        "reference": "ref-1",
        "reference_origin": "crm",
        "metadata": {"a": 1, "importer_key": importer_key(by_id, "cus1")},
    }
    # The same importer_key a REST create stamps: records match whichever strategy made them.
    assert item["metadata"] == create_body(by_id, "cus1")["data"]["attributes"]["metadata"]
    tokens = Pairing(
        customer_id=None, customer_email="a@b.c", payment_source_token="pm_1", customer_token="cus_t"
    )
    item = import_input(tokens, "cus9")
    assert (item["customer_id"], item["payment_source_token"], item["customer_token"]) == (
        "cus9",
        "pm_1",
        "cus_t",
    )
    assert "payment_source_type" not in item


def test_names_cuts_and_refusals() -> None:
    assert chunk_reference("20261130T000000Z-abc123", 7) == "importer-20261130T000000Z-abc123-0007"
    assert [len(c) for c in cut(list(range(25)), 10)] == [10, 10, 5]
    assert tuple(map(len, halves(list(range(5))))) == (3, 2)
    assert is_too_large(422, "VALIDATION_ERROR", "inputs - is too long (maximum is 10000 elements)")
    assert is_too_large(413, "HTTP_413", "") and not is_too_large(422, "VALIDATION_ERROR", "must exist")
    assert is_queue_full(422, "VALIDATION_ERROR", "base - has too many imports in progress (maximum is 10)")


def test_auto_chooses_by_rows_and_says_why() -> None:
    assert choose_strategy("auto", 1999, 2000, dry_run=False).strategy == "rest"
    choice = choose_strategy("auto", 2000, 2000, dry_run=False)
    assert choice.strategy == "imports" and "2000" in choice.reason
    assert choose_strategy("imports", 1, 2000, dry_run=False).strategy == "imports"
    assert choose_strategy("imports", 10**6, 2000, dry_run=True).strategy == "rest"
    assert choose_strategy("rest", 10**6, 2000, dry_run=False).strategy == "rest"
    assert rest_estimate_s(100_000, 200, 60.0) == 30_000.0  # 8.3 hours at live limits


def test_errors_log_maps_by_index_reference_or_key_and_quotes_the_rest() -> None:
    rows = _rows(4)
    mapped, unmapped = map_errors(
        {
            "1": {"customer": ["must exist"]},
            "ref-2": ["is invalid"],
            rows[3].importer_key: {"payment_source": ["can't be blank"]},
            "XYZ": {"name": ["has already been taken"]},
        },
        rows,
    )
    assert mapped == {1: "customer: must exist", 2: "is invalid", 3: "payment_source: can't be blank"}
    assert unmapped == ["XYZ: name: has already been taken"]
    assert map_errors({"9": ["out of range"]}, rows) == ({}, ["9: out of range"])
    assert map_errors(None, rows) == ({}, [])


def _found(row: ChunkRow, id_: str, key: str | None = "same") -> Found:
    source = f"stripe_payments:{row.input['payment_source_id']}"
    return Found(id_, row.customer_id, (source,), row.importer_key if key == "same" else key)


def test_reconcile_created_failed_resent_and_already_existing() -> None:
    rows = _rows(6)
    found = [
        _found(rows[0], "ID0"),
        _found(rows[1], "ID1", key=None),  # metadata dropped: still the import's record
        _found(rows[2], "ID2", key="someone-else"),
        Found("OTHER", "cus3", ("stripe_payments:elsewhere",), rows[3].importer_key),  # other source
    ]
    attributes = {
        "status": "interrupted",
        "errors_count": 1,
        "errors_log": {"4": {"customer": ["must exist"]}},
    }
    out = reconcile("imp-1", rows, found, attributes, may_resend=True)
    by_seq = {row.seq: outcome for row, outcome in out.settled}
    assert (by_seq[0].status, by_seq[0].customer_payment_source_id) == (RowStatus.CREATED, "ID0")
    assert (by_seq[1].status, by_seq[1].customer_payment_source_id) == (RowStatus.CREATED, "ID1")
    assert by_seq[2].status is RowStatus.ALREADY_EXISTS
    assert by_seq[4].status is RowStatus.FAILED and by_seq[4].error_code == "IMPORT_ROW_ERROR"
    assert "must exist" in (by_seq[4].error_detail or "")
    # Row 3 (its key on a record of another source is not a match) and row 5 were not reached.
    assert [r.seq for r in out.resend] == [3, 5]
    final = reconcile(
        "imp-2", rows[3:4], [], {"status": "completed", "errors_log": {"Q": ["x"]}}, may_resend=True
    )
    (only,) = final.settled
    assert only[1].status is RowStatus.FAILED and "errors_log: Q: x" in (only[1].error_detail or "")
    assert final.resend == []


def test_export_files_flat_or_nested_and_gzipped() -> None:
    import gzip
    import json

    flat = [
        {"id": "A", "customer_id": "c1", "payment_source_type": "stripe_payments", "payment_source_id": "s1",
         "metadata": {"importer_key": "k1"}},
        {"id": "B", "customer": {"id": "c2"}, "payment_source": {"type": "adyen_payments", "id": "s2"},
         "payment_source_token": "tok", "metadata": {}},
    ]  # fmt: skip
    found = found_in_export(parse_attachment(gzip.compress(json.dumps(flat).encode())))
    assert found == [
        Found("A", "c1", ("stripe_payments:s1",), "k1"),
        Found("B", "c2", ("adyen_payments:s2", "token:tok"), None),
    ]


def test_the_strategy_choice_is_logged_and_a_long_rest_run_names_imports(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    from importer.bulk import select_dispatch
    from importer.bulk.run import dispatch_imports
    from importer.config import load_settings
    from importer.dispatcher import dispatch
    from importer.journal import Journal

    journal = Journal.open(tmp_path / "j.sqlite")
    try:
        rest, _ = load_settings(None, overrides={"rate_limit.preset": "live"}, env={})
        with capture_logs() as logs:
            assert select_dispatch(rest, journal, "run-1", 10_000, dry_run=False) is dispatch
        (choice,) = [e for e in logs if e["event"] == "run.strategy"]
        assert (choice["strategy"], choice["rows"]) == ("rest", 10_000)
        assert "default" in choice["reason"] and choice["rest_estimate_s"] == 3000.0
        (long,) = [e for e in logs if e["event"] == "run.long"]
        assert "50 minutes over REST" in long["message"] and "--strategy imports" in long["message"]

        auto, _ = load_settings(None, overrides={"strategy": "auto"}, env={})
        with capture_logs() as logs:
            assert select_dispatch(auto, journal, "run-2", 2_000, dry_run=False) is dispatch_imports
            assert select_dispatch(auto, journal, "run-3", 1_999, dry_run=False) is dispatch
            assert select_dispatch(auto, journal, "run-4", 5_000, dry_run=True) is dispatch
        reasons = [e["reason"] for e in logs if e["event"] == "run.strategy"]
        assert "at or above imports.auto_threshold 2000" in reasons[0]
        assert "below imports.auto_threshold 2000" in reasons[1]
        assert "dry run" in reasons[2]
        assert not [e for e in logs if e["event"] == "run.long"]  # 1,999 rows at test limits: 20 min
    finally:
        journal.close()


def test_the_batched_journal_answers_as_the_journal_does(tmp_path: Path) -> None:
    from importer.bulk.batched import BatchedJournal
    from importer.journal import Journal
    from importer.models import Outcome

    journal = Journal.open(tmp_path / "j.sqlite")
    try:
        journal.start_run("r", command="run", target="t", inputs_fingerprint="f")
        pairings = [_pairing(i) for i in range(6)]
        rows = [
            (i, "in.csv", "", i + 2, "{}", p.key(), p.to_json(), "pending", None, None)
            for i, p in enumerate(pairings)
        ]
        journal.add_rows("r", rows)
        # An e-mail row (seq 6) that resolved to row 4's pairing, and row 5 known as created.
        email = Pairing(customer_id=None, customer_email="a@b.c", payment_source_type="stripe_payments",
                        payment_source_id="src4")  # fmt: skip
        journal.add_rows(
            "r", [(6, "in.csv", "", 8, "{}", email.key(), email.to_json(), "pending", None, None)]
        )
        journal.set_resolved_key("r", 1, pairings[4].key("cus4"))
        journal.mark_pairing("t", pairings[5].key(), "r0", Outcome(RowStatus.CREATED, "CPS5", "cus5"))
        batched = BatchedJournal(journal)
        chunk = [(i, p.key()) for i, p in enumerate(pairings)]
        batched.begin_chunk("r", "t", chunk)
        for seq, key in chunk:
            assert batched.earlier_row_with_key("r", key, seq) == journal.earlier_row_with_key("r", key, seq)
            assert batched.pairing_state("t", key) == journal.pairing_state("t", key)
        assert batched.earlier_row_with_key("r", pairings[4].key(), 4) == ("in.csv", "", 3)  # via row 1
        assert batched.pairing_state("t", pairings[5].key()) is not None
        batched.end_chunk()
        # An e-mail chunk: row 6 resolves to a new key; row 7, later in the same chunk, sees it
        # before anything is written, and the journal has it once the chunk ends.
        resolved = email.key("cus9")
        journal.add_rows("r", [(7, "in.csv", "", 9, "{}", resolved, email.to_json(), "pending", None, None)])
        batched.begin_chunk("r", "t", [(6, resolved), (7, resolved)])
        assert batched.earlier_row_with_key("r", resolved, 6) is None
        batched.set_resolved_key("r", 6, resolved)
        assert journal.earlier_row_with_key("r", resolved, 7) is None  # held back until the end
        assert batched.earlier_row_with_key("r", resolved, 7) == ("in.csv", "", 8)
        batched.end_chunk()
        assert journal.earlier_row_with_key("r", resolved, 7) == ("in.csv", "", 8)
        assert batched.earlier_row_with_key("r", resolved, 7) == ("in.csv", "", 8)  # asked row by row
    finally:
        journal.close()


def test_the_list_read_back_asks_for_metadata_in_its_sparse_fieldset() -> None:
    from urllib.parse import parse_qs

    from importer.bulk.readback import readback_page

    request = readback_page(["c1", "c2"], 2)
    query = parse_qs(request.query)
    assert "metadata" in query["fields[customer_payment_sources]"][0].split(",")
    assert query["filter[q][customer_id_in]"] == ["c1,c2"] and query["page[number]"] == ["2"]
