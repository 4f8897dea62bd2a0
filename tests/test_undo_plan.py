"""undo_plan.py without the network: which rows of a results.csv an undo may touch, and how."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from importer.errors import SourceError
from importer.models import Pairing, pairing_digest
from importer.undo_plan import expected_importer_key, rows_from_results

HEADER = ["source_file", "source_sheet", "source_row", "status", "customer_payment_source_id", "customer_id",
          "customer_email", "payment_source_type", "payment_source_id", "payment_source_token", "reference",
          "error_code", "error_detail"]  # fmt: skip


def _write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_only_created_rows_are_candidates(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "results.csv",
        [
            ["a.xlsx", "Jan", "2", "created", "R000000001", "C000000001", "", "stripe_payments",
             "S000000001", "", "ref", "", ""],
            ["a.xlsx", "Jan", "3", "already_exists", "R000000002", "C000000002", "", "stripe_payments",
             "S000000002", "", "", "", ""],
            ["a.xlsx", "Jan", "4", "created", "", "C000000003", "", "", "", "'=tok", "", "", ""],
            ["a.xlsx", "Jan", "5", "invalid", "", "", "", "", "", "", "", "INVALID_ROW", "bad id"],
        ],
    )  # fmt: skip
    rows = list(rows_from_results(path))
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (0, "a.xlsx", "Jan", 2),
        (1, "a.xlsx", "Jan", 3),
        (2, "a.xlsx", "Jan", 4),
        (3, "a.xlsx", "Jan", 5),
    ]
    # A created row without its record id (imports without read-back) is still a candidate: the
    # undo finds its record by pairing.
    assert [r[7] for r in rows] == ["pending", "skipped", "pending", "skipped"]
    assert rows[0][5] == "id:C000000001|stripe_payments:S000000001"
    assert rows[1][10:] == (
        "NOT_CREATED_BY_RUN",
        f"already_exists in {path}: only rows the run created are undone; left alone",
    )
    assert rows[2][5] == "id:C000000003|token:=tok" and rows[2][8] is None
    # The report's formula escape is undone: the token is read as the run wrote it.
    assert json.loads(rows[2][6])["payment_source_token"] == "=tok"


def test_the_expected_key_is_the_one_the_record_was_created_with() -> None:
    plain = Pairing(customer_id=None, customer_email="a@b.co", payment_source_type="stripe_payments",
                    payment_source_id="S000000001")  # fmt: skip
    assert expected_importer_key(plain, "C000000001") == pairing_digest(
        "id:C000000001|stripe_payments:S000000001"
    )
    own = Pairing(customer_id="C000000001", customer_email=None, payment_source_token="tok",
                  metadata={"importer_key": "row-set"})  # fmt: skip
    assert expected_importer_key(own, "C000000001") == "row-set"


def test_a_file_that_is_not_a_results_csv_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.csv", [["C000000001", "stripe_payments", "S000000001"]],
                  ["customer_id", "payment_source_type", "payment_source_id"])  # fmt: skip
    with pytest.raises(SourceError) as err:
        list(rows_from_results(path))
    assert str(err.value) == (
        f"{path}: not a results.csv of `importer run` (missing column(s): status, "
        "customer_payment_source_id); pass --results the results.csv from the run's report folder"
    )
