"""failures.csv closes the loop: it always loads, it has one column per field whatever the inputs
called them, and fed back it gives what it should. Runs over real HTTP against the sandbox."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import api_of, cli, write_config
from helpers_files import HEADER, cid, psid, read_csv, read_csv_rows
from run_helpers import created_count, results, sandbox_thread, write_csv

from importer.columns import FAILURE_CORE_FIELDS, FAILURE_LEAD_COLUMNS
from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    yield


def _run(config: Path, report_dir: str, *inputs: str) -> int:
    out = cli(["run", *inputs, "-c", str(config), "--report-dir", report_dir, "--log-format", "json"])
    assert "Traceback" not in out.err, out.err[-3000:]
    return out.code


def test_failures_csv_of_an_all_success_run_feeds_back_as_zero_rows(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    rows = [[s.customer_id, s.type, s.id] for s in data.sources[:4]]
    write_csv(tmp_path / "in.csv", ["customer_id", "payment_source_type", "payment_source_id"], rows)
    with sandbox_thread() as sb:
        config = write_config(tmp_path / "config.yaml", api_of(sb), tmp_path / "j.sqlite")
        assert _run(config, "first", "in.csv") == 0
        assert created_count(sb) == 4
        header = read_csv_rows(tmp_path / "first" / "failures.csv")
        assert header == [[*FAILURE_LEAD_COLUMNS, *FAILURE_CORE_FIELDS, "error_code", "error_detail"]]
        # The nightly "re-feed failures" step: nothing to do, and that is a success.
        assert _run(config, "again", "first/failures.csv") == 0
        assert results(tmp_path / "again") == []
        assert created_count(sb) == 4
    assert cli(["validate", "first/failures.csv", "--report-dir", "v", "--log-format", "json"]).code == 0


def test_two_header_spellings_give_one_column_per_field_and_feed_back(tmp_path: Path) -> None:
    data = generate(DEMO_SEED, 20)
    good = list(data.sources[:6])
    email_of = {c.id: c.email for c in data.customers}
    write_csv(
        tmp_path / "a.csv",
        ["customer_id", "payment_source_type", "payment_source_id", "Notes"],
        [
            [good[0].customer_id, good[0].type, good[0].id, "ok"],
            [good[1].customer_id, "stripe_payments", "NoSuchId01", "typo in id"],  # a.csv row 3: 422
        ],
    )
    write_csv(
        tmp_path / "b.csv",
        ["Customer E-mail", "Payment Source Type", "Payment Source ID", "Comment"],
        [
            [email_of[good[2].customer_id], good[2].type, good[2].id, "fine"],
            ["nobody@example.com", good[3].type, good[3].id, "who?"],  # b.csv row 3: unknown
        ],
    )
    with sandbox_thread() as sb:
        config = write_config(tmp_path / "config.yaml", api_of(sb), tmp_path / "j.sqlite")
        assert _run(config, "first", "a.csv", "b.csv") == 1
        failures = read_csv_rows(tmp_path / "first" / "failures.csv")
        assert failures[0] == [
            *FAILURE_LEAD_COLUMNS,
            *FAILURE_CORE_FIELDS,
            "Notes",
            "Comment",
            "error_code",
            "error_detail",
        ]
        lines = read_csv(tmp_path / "first" / "failures.csv")
        assert [(r["source_file"], r["source_row"]) for r in lines] == [("a.csv", "3"), ("b.csv", "3")]
        assert lines[0]["payment_source_id"] == "NoSuchId01" and lines[0]["Notes"] == "typo in id"
        assert lines[1]["customer_email"] == "nobody@example.com" and lines[1]["Comment"] == "who?"
        assert [r["error_code"] for r in lines] == ["VALIDATION_ERROR", "CUSTOMER_NOT_FOUND"]

        # Fed back as is: both rows load (exit 1, not 2: they fail again, for the same reasons).
        assert _run(config, "second", "first/failures.csv") == 1
        again = results(tmp_path / "second")
        assert [r["status"] for r in again] == ["failed", "failed"]
        assert [r["error_code"] for r in again] == ["VALIDATION_ERROR", "CUSTOMER_NOT_FOUND"]
        assert read_csv_rows(tmp_path / "second" / "failures.csv")[0] == failures[0]

        # Fixed in place and fed back: the fixed row is created, the other still fails.
        with open(tmp_path / "first" / "failures.csv", newline="", encoding="utf-8-sig") as fh:
            table = list(csv.reader(fh))
        id_column = table[0].index("payment_source_id")
        table[1][id_column] = good[1].id
        table[1][table[0].index("payment_source_type")] = good[1].type
        with open(tmp_path / "fixed.csv", "w", newline="", encoding="utf-8-sig") as fh:
            csv.writer(fh).writerows(table)
        before = created_count(sb)
        assert _run(config, "third", "fixed.csv") == 1
        assert [r["status"] for r in results(tmp_path / "third")] == ["created", "failed"]
        assert created_count(sb) == before + 1


def test_results_csv_shows_an_invalid_rows_values(tmp_path: Path) -> None:
    write_csv(
        tmp_path / "in.csv",
        list(HEADER),
        [
            [cid(1), "", "stripe_payments", psid(1), "ok"],
            ["", "not-an-email", "Stripe payment", psid(2), "ref-2"],
            ["bad", "", "stripe_payments", psid(3), ""],
        ],
    )
    (tmp_path / "cfg.yaml").write_text("max_invalid_ratio: 1\n")
    assert (
        cli(["validate", "in.csv", "-c", "cfg.yaml", "--report-dir", "out", "--log-format", "json"]).code == 1
    )
    got = results(tmp_path / "out")
    assert [r["status"] for r in got] == ["valid", "invalid", "invalid"]
    assert got[1]["customer_email"] == "not-an-email"
    assert got[1]["payment_source_type"] == "Stripe payment"  # as typed: the row was not parsed
    assert got[1]["payment_source_id"] == psid(2) and got[1]["reference"] == "ref-2"
    assert got[2]["customer_id"] == "bad" and got[2]["payment_source_id"] == psid(3)
    assert got[0]["payment_source_type"] == "stripe_payments"


def test_a_value_cut_at_an_unquoted_comma_stays_in_failures_csv_until_put_back(tmp_path: Path) -> None:
    """The cut-off part of a value must survive the loop: fed back as is, failures.csv is still
    invalid; once the value is whole again and `extra_values` is empty, the row is valid."""
    (tmp_path / "cut.csv").write_text(
        "customer_id,payment_source_type,payment_source_id,reference\n"
        f"{cid(1)},stripe_payments,{psid(1)},Invoice 2024-000, Rossi\n",
        encoding="utf-8",
    )
    argv = ["validate", "--log-format", "json", "--report-dir"]
    assert cli([*argv, "first", "cut.csv"]).code == 2  # 1 invalid row of 1
    (failed,) = read_csv(tmp_path / "first" / "failures.csv")
    assert failed["reference"] == "Invoice 2024-000"
    assert failed["extra_values"] == "Rossi"

    assert cli([*argv, "again", "first/failures.csv"]).code == 2  # fed back as is: still invalid
    (again,) = read_csv(tmp_path / "again" / "results.csv")
    assert again["status"] == "invalid"
    assert "'extra_values' still holds 'Rossi'" in again["error_detail"]
    assert (again["source_file"], again["row_number"]) == ("cut.csv", "2")

    fixed = tmp_path / "fixed.csv"
    with open(tmp_path / "first" / "failures.csv", encoding="utf-8-sig", newline="") as fh:
        table = list(csv.DictReader(fh))
    table[0] |= {"reference": "Invoice 2024-000, Rossi", "extra_values": ""}
    with open(fixed, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    assert cli([*argv, "fixed", "fixed.csv"]).code == 0
    (ok,) = read_csv(tmp_path / "fixed" / "results.csv")
    assert (ok["status"], ok["reference"]) == ("valid", "Invoice 2024-000, Rossi")
