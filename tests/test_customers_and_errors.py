"""Issue 8, part 2, end to end against the sandbox over real HTTP: e-mails without assumptions
about the server's case folding, a customer named twice, resource-level 401s and 409s, wallet
look-ups that carry sort and sparse fieldsets, and 422s that name the relationship they concern.
Assertions are on counts, states and texts, never on seconds."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from run_helpers import (
    created_count,
    duplicates,
    results,
    run_import,
    sandbox_thread,
    settings_for,
    statuses,
    when,
    write_csv,
)
from structlog.testing import capture_logs

from importer.cli import main
from importer.models import Pairing
from importer.planner import create_request
from importer.sandbox.sample import write_sample
from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED
from importer.transport import AiohttpSender
from importer.wire import ApiRequest, ApiResponse

CPS = "customer_payment_sources"

# Customers whose e-mails are stored with capitals, and two that differ only in case.
SEED: dict[str, Any] = {
    "customers": [
        {"id": "MixedAnna1", "email": "Anna.Okafor@Example.com"},
        {"id": "LowerBruno", "email": "bruno.silva@example.com"},
        {"id": "CarlaUpper", "email": "Carla.Costa@Example.com"},
        {"id": "CarlaLower", "email": "carla.costa@example.com"},
        {"id": "MixedDario", "email": "Dario.Weber@Example.com"},
    ],
    "payment_sources": [{"type": "stripe_payments", "id": f"Stripe{n:04d}"} for n in range(8)]
    + [{"type": "klarna_payments", "id": "KlarnaOnly"}],
}
HEADER = ["customer_id", "customer_email", "payment_source_type", "payment_source_id"]


def _seeded(tmp_path: Path, **settings: Any) -> Any:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(SEED), encoding="utf-8")
    return sandbox_thread(seed_file=str(seed), **settings)


def _by_row(report: Path) -> list[dict[str, str]]:
    return results(report)


def _created_for(sb: Any) -> dict[str, str]:
    """payment source id → customer id, for every wallet entry in the sandbox."""
    return {r["payment_source_id"]: r["customer_id"] for r in sb.records()}


# -- e-mails ---------------------------------------------------------------------------------------

SHEET_EMAILS = [
    ["", "Anna.Okafor@Example.com", "stripe_payments", "Stripe0000"],  # as stored
    ["", "BRUNO.SILVA@EXAMPLE.COM", "stripe_payments", "Stripe0001"],  # lower form is stored
    ["", "dario.weber@example.com", "stripe_payments", "Stripe0002"],  # only a case-folding server
    ["", "  Anna.Okafor@Example.com ", "stripe_payments", "Stripe0003"],  # trimmed
]


def test_emails_match_in_a_case_sensitive_sandbox(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "in.csv", HEADER, SHEET_EMAILS)
    with _seeded(tmp_path, email_case_sensitive=True) as sb:
        out = run_import(settings_for(sb, tmp_path), [csv], tmp_path / "rep")
        rows = _by_row(tmp_path / "rep")
        assert [r["status"] for r in rows] == ["created", "created", "failed", "created"]
        # The address as written and its lower-case form were asked for; the stored
        # "Dario.Weber@Example.com" cannot be reached from an all-lower-case cell on a server
        # that matches exactly: that row says so, it is not created for anybody.
        assert rows[2]["error_code"] == "CUSTOMER_NOT_FOUND"
        assert rows[2]["error_detail"] == (
            "no customer with e-mail dario.weber@example.com in this organization (looked up as written "
            "and in lower case); create the customer first, or correct the e-mail; if the customer's "
            "record has capitals in its e-mail, write it exactly so: the API may match e-mails "
            "case-sensitively"
        )
        assert [r["customer_email"] for r in rows[:2]] == [
            "Anna.Okafor@Example.com",
            "BRUNO.SILVA@EXAMPLE.COM",
        ]
        assert _created_for(sb) == {
            "Stripe0000": "MixedAnna1",
            "Stripe0001": "LowerBruno",
            "Stripe0003": "MixedAnna1",
        }
        assert out.exit_code == 1 and duplicates(sb) == 0


def test_emails_match_in_a_case_folding_sandbox(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "in.csv", HEADER, SHEET_EMAILS)
    with _seeded(tmp_path, email_case_sensitive=False) as sb:
        out = run_import(settings_for(sb, tmp_path), [csv], tmp_path / "rep")
        assert [r["status"] for r in _by_row(tmp_path / "rep")] == ["created"] * 4
        assert _created_for(sb) == {
            "Stripe0000": "MixedAnna1",
            "Stripe0001": "LowerBruno",
            "Stripe0002": "MixedDario",
            "Stripe0003": "MixedAnna1",
        }
        assert out.exit_code == 0


def test_a_spelling_found_earlier_serves_later_chunks(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "in.csv",
        HEADER,
        [
            ["", "dario.weber@example.com", "stripe_payments", "Stripe0000"],  # before: not reachable
            ["", "Dario.Weber@Example.com", "stripe_payments", "Stripe0001"],  # finds the customer
            ["", "dario.weber@example.com", "stripe_payments", "Stripe0002"],  # later chunk: known now
        ],
    )
    with _seeded(tmp_path, email_case_sensitive=True) as sb:
        settings = settings_for(sb, tmp_path, **{"lookups.wallet_batch": 1})  # one row per chunk
        run_import(settings, [csv], tmp_path / "rep")
        rows = _by_row(tmp_path / "rep")
        assert [(r["status"], r["error_code"]) for r in rows] == [
            ("failed", "CUSTOMER_NOT_FOUND"),
            ("created", ""),
            ("created", ""),
        ]
        assert _created_for(sb) == {"Stripe0001": "MixedDario", "Stripe0002": "MixedDario"}


def test_case_variants_in_the_sheet_are_one_customer_for_duplicates(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "in.csv",
        HEADER,
        [
            ["", "Anna.Okafor@Example.com", "stripe_payments", "Stripe0000"],
            ["", "ANNA.OKAFOR@example.com", "stripe_payments", "Stripe0000"],
        ],
    )
    with _seeded(tmp_path) as sb:
        run_import(settings_for(sb, tmp_path), [csv], tmp_path / "rep")
        rows = _by_row(tmp_path / "rep")
        assert [r["status"] for r in rows] == ["created", "duplicate_in_file"]
        assert len(sb.records()) == 1


@pytest.mark.parametrize("case_sensitive", [True, False])
def test_customers_differing_only_in_case_make_the_row_ambiguous(
    tmp_path: Path, case_sensitive: bool
) -> None:
    csv = write_csv(
        tmp_path / "in.csv", HEADER, [["", "Carla.Costa@Example.com", "stripe_payments", "Stripe0004"]]
    )
    with _seeded(tmp_path, email_case_sensitive=case_sensitive) as sb:
        out = run_import(settings_for(sb, tmp_path), [csv], tmp_path / "rep")
        (row,) = _by_row(tmp_path / "rep")
        assert (row["status"], row["error_code"]) == ("failed", "CUSTOMER_AMBIGUOUS")
        assert row["error_detail"] == (
            "e-mail Carla.Costa@Example.com matches 2 customers whose e-mails differ only in case: "
            "CarlaLower (carla.costa@example.com), CarlaUpper (Carla.Costa@Example.com); nothing was "
            "sent; give the customer_id column instead of the e-mail"
        )
        assert sb.records() == [] and out.exit_code == 1 and out.summary["posts"] == 0


# -- e-mails resolved through an export of customers (the imports strategy's pre-check) --------------

EXPORTED = {"strategy": "imports", "imports.email_lookup": "export", "imports.poll_interval_s": 0.05}


@pytest.mark.parametrize("case_sensitive", [True, False])
def test_emails_resolved_by_export_match_as_the_gets_do(tmp_path: Path, case_sensitive: bool) -> None:
    """The same sheet and the same outcomes as the GET look-ups above, through one export."""
    csv = write_csv(tmp_path / "in.csv", HEADER, SHEET_EMAILS)
    with _seeded(tmp_path, email_case_sensitive=case_sensitive) as sb:
        out = run_import(settings_for(sb, tmp_path, **EXPORTED), [csv], tmp_path / "rep")
        rows = _by_row(tmp_path / "rep")
        assert out.summary["imports"]["email_exports"] == 1
        gets = [e for e in sb.requests_log() if e["method"] == "GET" and e["path"] == "/api/customers"]
        assert gets == []  # no e-mail was asked for by GET
        if case_sensitive:
            assert [(r["status"], r["error_code"]) for r in rows] == [
                ("created", ""),
                ("created", ""),
                ("failed", "CUSTOMER_NOT_FOUND"),
                ("created", ""),
            ]
            assert _created_for(sb) == {
                "Stripe0000": "MixedAnna1",
                "Stripe0001": "LowerBruno",
                "Stripe0003": "MixedAnna1",
            }
        else:
            assert [r["status"] for r in rows] == ["created"] * 4
            assert _created_for(sb)["Stripe0002"] == "MixedDario"
        assert duplicates(sb) == 0


def test_customers_differing_only_in_case_are_ambiguous_through_the_export_too(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "in.csv", HEADER, [["", "Carla.Costa@Example.com", "stripe_payments", "Stripe0004"]]
    )
    with _seeded(tmp_path, email_case_sensitive=True) as sb:
        out = run_import(settings_for(sb, tmp_path, **EXPORTED), [csv], tmp_path / "rep")
        (row,) = _by_row(tmp_path / "rep")
        assert (row["status"], row["error_code"]) == ("failed", "CUSTOMER_AMBIGUOUS")
        assert (
            "CarlaLower (carla.costa@example.com), CarlaUpper (Carla.Costa@Example.com)"
            in row["error_detail"]
        )
        assert out.summary["imports"]["email_exports"] == 1
        assert sb.records() == [] and out.summary["imports"]["posted"] == 0


def test_a_row_failed_by_the_imports_pre_check_is_named_in_the_json_log(tmp_path: Path) -> None:
    """`row.failed` says where the row is, with imports as with REST (it said file "", row 0)."""
    csv = write_csv(tmp_path / "in.csv", HEADER, SHEET_EMAILS)
    with _seeded(tmp_path, email_case_sensitive=True) as sb:
        with capture_logs() as logs:
            run_import(settings_for(sb, tmp_path, **EXPORTED), [csv], tmp_path / "rep")
        failed = [e for e in logs if e["event"] == "row.failed"]
        assert [(e["file"], e["row"], e["error_code"]) for e in failed] == [
            (str(csv), 4, "CUSTOMER_NOT_FOUND")
        ]


def test_a_failing_export_of_customers_falls_back_to_the_gets(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "in.csv", HEADER, SHEET_EMAILS)
    with _seeded(tmp_path, email_case_sensitive=False, exports_error_5xx=1.0) as sb:
        settings = settings_for(sb, tmp_path, **EXPORTED, **{"retry.max_attempts": 2})
        with capture_logs() as logs:
            out = run_import(settings, [csv], tmp_path / "rep")
        assert [r["status"] for r in _by_row(tmp_path / "rep")] == ["created"] * 4
        assert out.summary["imports"]["email_exports"] == 0
        assert any(e["event"] == "imports.email_export_failed" for e in logs)
        gets = [e for e in sb.requests_log() if e["method"] == "GET" and e["path"] == "/api/customers"]
        assert gets  # the e-mails were then asked for by GET
        assert duplicates(sb) == 0


# -- a customer named twice ------------------------------------------------------------------------


def test_a_row_naming_two_customers_is_created_for_neither(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "in.csv",
        HEADER,
        [
            ["LowerBruno", "Anna.Okafor@Example.com", "stripe_payments", "Stripe0005"],  # two customers
            ["LowerBruno", "nobody@example.com", "stripe_payments", "Stripe0006"],  # e-mail names nobody
            ["LowerBruno", "Bruno.Silva@Example.com", "stripe_payments", "Stripe0007"],  # same one
            ["CarlaUpper", "Carla.Costa@Example.com", "stripe_payments", "Stripe0004"],  # id picks one
        ],
    )
    with _seeded(tmp_path) as sb:
        out = run_import(settings_for(sb, tmp_path), [csv], tmp_path / "rep")
        rows = _by_row(tmp_path / "rep")
        assert [(r["status"], r["error_code"]) for r in rows] == [
            ("failed", "CUSTOMER_MISMATCH"),
            ("failed", "CUSTOMER_MISMATCH"),
            ("created", ""),
            ("created", ""),
        ]
        assert rows[0]["error_detail"] == (
            "customer_id LowerBruno and customer_email Anna.Okafor@Example.com name different customers: "
            "the e-mail is customer MixedAnna1 (Anna.Okafor@Example.com); nothing was created for either; "
            "correct one of the two cells"
        )
        assert rows[1]["error_detail"] == (
            "customer_id LowerBruno and customer_email nobody@example.com do not name the same customer: "
            "no customer has the e-mail nobody@example.com in this organization; nothing was created; "
            "correct the e-mail, or empty customer_email to import for customer LowerBruno"
        )
        assert _created_for(sb) == {"Stripe0007": "LowerBruno", "Stripe0004": "CarlaUpper"}
        assert out.summary["posts"] == 2 and out.exit_code == 1


# -- 401 and 409 -----------------------------------------------------------------------------------


def test_a_resource_level_401_fails_only_its_rows(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=30)
    customer_rows = _csv_rows(tmp_path / "in.csv")
    denied = sorted({r["customer_id"] for r in customer_rows if r["customer_id"]})[:2]
    with sandbox_thread(customers=info.customers, unauthorized_customers=",".join(denied)) as sb:
        out = run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        rows = _by_row(tmp_path / "rep")
        expected_denied = [r for r in rows if r["customer_id"] in denied]
        assert expected_denied and all(
            (r["status"], r["http_status"], r["error_code"]) == ("failed", "401", "UNAUTHORIZED")
            for r in expected_denied
        )
        assert "token's scope" in expected_denied[0]["error_detail"]
        assert "market" in expected_denied[0]["error_detail"]
        others = [r for r in rows if r["customer_id"] not in denied]
        assert others and all(r["status"] == "created" for r in others)
        assert len(sb.records()) == len(others)
        assert out.exit_code == 1
        # One renewal for the first denial; later denials with that renewed token cost none.
        assert out.summary["tokens_fetched"] == 2


def test_systemic_401s_abort_the_run(tmp_path: Path) -> None:
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=40)
    with sandbox_thread(customers=20, unauthorized=1.0) as sb:
        out = run_import(
            settings_for(sb, tmp_path, **{"retry.max_denied_in_a_row": 5}),
            [tmp_path / "in.csv"],
            tmp_path / "rep",
        )
        assert out.exit_code == 3
        assert out.message is not None and "5 times in a row" in out.message and "scope" in out.message
        counts = statuses(tmp_path / "rep")
        assert counts.get("created", 0) == 0 and counts.get("failed", 0) >= 4
        assert counts.get("not_attempted", 0) > 0 and sum(counts.values()) == 40
        assert sb.records() == []


def test_a_409_is_looked_up_and_reported_already_exists(tmp_path: Path) -> None:
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=12)
    with sandbox_thread(customers=20, conflict_409=1.0) as sb:
        out = run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        rows = _by_row(tmp_path / "rep")
        assert [r["status"] for r in rows] == ["already_exists"] * 12
        assert sorted(r["customer_payment_source_id"] for r in rows) == sorted(r["id"] for r in sb.records())
        assert {r["http_status"] for r in rows} == {"409"}
        assert out.exit_code == 0 and duplicates(sb) == 0 and out.summary["posts"] == 12


def test_a_409_for_a_record_nobody_can_see_fails_the_row(tmp_path: Path) -> None:
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=3)
    with sandbox_thread(customers=20, conflict_409=1.0, conflict_409_unseen=True) as sb:
        out = run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        rows = _by_row(tmp_path / "rep")
        assert [(r["status"], r["error_code"]) for r in rows] == [("failed", "RECORD_NOT_UNIQUE")] * 3
        assert "the clash is with a record the look-up cannot see" in rows[0]["error_detail"]
        assert sb.records() == [] and out.summary["posts"] == 3 and out.exit_code == 1


# -- wallet look-ups -------------------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[ApiRequest]:
    """Every request the importer's sender makes (still over real HTTP)."""
    seen: list[ApiRequest] = []
    real_send = AiohttpSender.send

    async def send(self: AiohttpSender, request: ApiRequest, token: str) -> ApiResponse:
        seen.append(request)
        return await real_send(self, request, token)

    monkeypatch.setattr(AiohttpSender, "send", send)
    return seen


def _wallet_queries(sent: list[ApiRequest]) -> list[dict[str, list[str]]]:
    return [parse_qs(r.query) for r in sent if r.method == "GET" and r.path == f"/api/{CPS}"]


def test_wallet_lookups_carry_sort_and_sparse_fields(tmp_path: Path, sent: list[ApiRequest]) -> None:
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=20)
    with sandbox_thread(customers=20) as sb:
        run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        run_import(settings_for(sb, tmp_path / "fresh"), [tmp_path / "in.csv"], tmp_path / "rep2")
        assert statuses(tmp_path / "rep2") == {"already_exists": 20}
    queries = _wallet_queries(sent)
    assert len(queries) >= 2
    for q in queries:
        assert q["sort"] == ["created_at,id"]
        assert q[f"fields[{CPS}]"] == ["payment_source_token,customer,payment_source"]
        assert "filter[q][payment_source_token_in]" not in q  # id-shape rows: nothing to filter by


def test_token_rows_filter_the_wallet_by_token(tmp_path: Path, sent: list[ApiRequest]) -> None:
    write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=15, shape="tokens")
    tokens = sorted(r["payment_source_token"] for r in _csv_rows(tmp_path / "in.csv"))
    with sandbox_thread(customers=20) as sb:
        run_import(settings_for(sb, tmp_path), [tmp_path / "in.csv"], tmp_path / "rep")
        run_import(settings_for(sb, tmp_path / "fresh"), [tmp_path / "in.csv"], tmp_path / "rep2")
        assert statuses(tmp_path / "rep") == {"created": 15}
        assert statuses(tmp_path / "rep2") == {"already_exists": 15}
    queries = _wallet_queries(sent)
    assert queries and all(q["filter[q][payment_source_token_in]"] == [",".join(tokens)] for q in queries)


# -- 422 about a relationship ----------------------------------------------------------------------


def test_a_422_names_the_type_and_id_and_a_loose_type_spelling(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "in.csv",
        HEADER,
        [
            ["LowerBruno", "", "Stripe", "KlarnaOnly"],  # loose spelling; the id is a Klarna one
            ["LowerBruno", "", "stripe_payments", "NoSuchId00"],  # exact spelling
        ],
    )
    with _seeded(tmp_path) as sb:
        run_import(settings_for(sb, tmp_path), [csv], tmp_path / "rep")
        loose, exact = _by_row(tmp_path / "rep")
        assert (loose["status"], loose["http_status"], loose["error_code"]) == (
            "failed",
            "422",
            "VALIDATION_ERROR",
        )
        assert loose["error_detail"] == (
            "payment_source - must exist (at /data/relationships/payment_source) [payment_source sent as "
            "stripe_payments KlarnaOnly; the type stripe_payments was read from 'Stripe', so the id "
            "KlarnaOnly may belong to another payment type: check it in the Dashboard and write the exact "
            "type (e.g. stripe_payments) in the payment_source_type column]"
        )
        assert exact["error_detail"] == (
            "payment_source - must exist (at /data/relationships/payment_source) "
            "[payment_source sent as stripe_payments NoSuchId00]"
        )


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


# -- Retry-After as an HTTP date -------------------------------------------------------------------


def test_a_retry_after_http_date_sets_the_pause(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=40)
    # Windows wide open, so every 429 comes from the storm; each carries an HTTP-date Retry-After.
    with sandbox_thread(
        customers=info.customers,
        burst_limit=1000,
        average_limit=10000,
        retry_after=True,
        retry_after_format="http-date",
    ) as sb:
        assert sb.settings.burst_window < 1.0  # what a 429 without a usable header would pause
        with (
            capture_logs() as logs,
            when(lambda: created_count(sb) >= 10, lambda: sb.set_faults(storm_s=1.2)),
        ):
            out = run_import(
                settings_for(sb, tmp_path, concurrency=4), [tmp_path / "in.csv"], tmp_path / "rep"
            )
        assert statuses(tmp_path / "rep") == {"created": 40} and duplicates(sb) == 0
        pauses = [e["pause_s"] for e in logs if e["event"] == "run.paused"]
        assert pauses and out.summary["rate_limited"] >= 1
        # Date and Retry-After are whole seconds of the server's clock: the pause is the
        # difference of the two dates, at least 1 s, never the 0.5 s burst-window fallback.
        assert all(p >= 1.0 and float(p).is_integer() for p in pauses)


def test_the_oldest_entry_wins_whatever_the_servers_default_order(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    customer, source = data.customers[0].id, data.sources[0]
    csv = write_csv(tmp_path / "in.csv", HEADER, [[customer, "", source.type, source.id]])
    # A server whose lists come newest first unless asked: only `sort` makes "oldest" mean oldest.
    with sandbox_thread(list_order="newest_first") as sb:
        for id_, stamp in (
            ("OldestOne1", "2026-01-01T00:00:00.000Z"),
            ("NewerOne01", "2026-06-01T00:00:00.000Z"),
        ):
            sb.store.tables[CPS].insert(
                {
                    "id": id_,
                    "created_at": stamp,
                    "updated_at": stamp,
                    "customer_id": customer,
                    "payment_method_id": None,
                    "payment_source_type": source.type,
                    "payment_source_id": source.id,
                    "customer_token": None,
                    "payment_source_token": None,
                    "reference": None,
                    "reference_origin": None,
                    "metadata": {},
                    "name": source.name,
                }
            )
        run_import(settings_for(sb, tmp_path), [csv], tmp_path / "rep")
        (row,) = _by_row(tmp_path / "rep")
        assert (row["status"], row["customer_payment_source_id"]) == ("already_exists", "OldestOne1")


# -- the same through the CLI: exit codes and the one-line message ---------------------------------


def _cli_run(sb: Any, tmp_path: Path, extra: str = "") -> int:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"commercelayer:\n  base_url: {sb.base_url}\n  auth_url: {sb.auth_url}\n"
        f"  client_id: {sb.client_id}\n  client_secret: ${{CL_CLIENT_SECRET}}\n"
        f"journal:\n  path: {tmp_path / 'journal.sqlite'}\n{extra}",
        encoding="utf-8",
    )
    os.chmod(config, 0o600)
    argv = ["run", str(tmp_path / "in.csv"), "-c", str(config), "--report-dir", str(tmp_path / "rep")]
    return main([*argv, "--log-format", "json"])


@pytest.mark.parametrize("systemic", [False, True])
def test_401s_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], systemic: bool
) -> None:
    for var in ("CL_BASE_URL", "CL_AUTH_URL", "CL_CLIENT_ID", "CL_SCOPE"):
        monkeypatch.delenv(var, raising=False)
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=20)
    rows = _csv_rows(tmp_path / "in.csv")
    one = next(r["customer_id"] for r in rows if r["customer_id"])
    faults: dict[str, Any] = {"unauthorized": 1.0} if systemic else {"unauthorized_customers": one}
    with sandbox_thread(customers=info.customers, **faults) as sb:
        monkeypatch.setenv("CL_CLIENT_SECRET", sb.client_secret)
        code = _cli_run(sb, tmp_path, "retry:\n  max_denied_in_a_row: 3\n")
        captured = capsys.readouterr()
        report = results(tmp_path / "rep")
        assert sb.client_secret not in captured.out + captured.err
        if systemic:
            assert code == 3
            # JSON mode: the closing message is the run.message event.
            assert '"message": "the API refused access 3 times in a row' in captured.err
            assert sb.records() == [] and "not_attempted" in {r["status"] for r in report}
        else:
            assert code == 1
            denied = [r for r in report if r["customer_id"] == one]
            assert denied and {r["error_code"] for r in denied} == {"UNAUTHORIZED"}
            assert len(sb.records()) == len(report) - len(denied)


# -- the two-host window ---------------------------------------------------------------------------


@pytest.mark.parametrize("check_before_post", [False, True])
def test_another_host_creating_the_pairing_after_the_chunk_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, check_before_post: bool
) -> None:
    data = generate(DEMO_SEED, 20)
    pairs = [(data.customers[n].id, data.sources[n]) for n in range(8)]
    csv = write_csv(tmp_path / "in.csv", HEADER, [[c, "", s.type, s.id] for c, s in pairs])
    real_send = AiohttpSender.send
    raced: list[str] = []

    async def send(self: AiohttpSender, request: ApiRequest, token: str) -> ApiResponse:
        response = await real_send(self, request, token)
        if request.method == "GET" and request.path == f"/api/{CPS}" and not raced:
            # Right after our chunk's wallet look-up said "not there", another host (its own
            # journal) creates every pairing of the chunk, over the same API.
            for customer, source in pairs:
                other = create_request(Pairing(customer, None, source.type, source.id), customer)
                answer = await real_send(self, other, token)
                raced.append(answer.body["data"]["id"])
        return response

    monkeypatch.setattr(AiohttpSender, "send", send)
    with sandbox_thread() as sb:
        settings = settings_for(sb, tmp_path, **{"lookups.check_before_post": check_before_post})
        out = run_import(settings, [csv], tmp_path / "rep")
        rows = _by_row(tmp_path / "rep")
        if check_before_post:
            # Checked again right before each POST: the other host's records are found.
            assert [r["status"] for r in rows] == ["already_exists"] * 8
            assert sorted(r["customer_payment_source_id"] for r in rows) == sorted(raced)
            assert duplicates(sb) == 0 and out.summary["posts"] == 0
        else:
            # The window this setting closes: checked once per chunk, both hosts create.
            assert [r["status"] for r in rows] == ["created"] * 8
            assert duplicates(sb) == 8
