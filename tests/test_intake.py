"""Intake: every row lands in the journal once, in order, as pending, invalid or duplicate_in_file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_files import source_row

from importer.intake import IntakeCounts, intake
from importer.journal import Journal
from importer.loader import Loader
from importer.models import RowStatus
from importer.validator import Defaults

RUN = "run-1"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal.open(tmp_path / "j.sqlite")
    j.start_run(RUN, command="validate", target="", inputs_fingerprint="fp")
    yield j
    j.close()


def statuses(journal: Journal) -> list[tuple[int, str, str | None]]:
    """The stored states (iter_rows shows `pending` as not_attempted, as a report must)."""
    return journal._conn.execute(
        "SELECT row_number, status, error_detail FROM rows WHERE run_id=? ORDER BY seq", (RUN,)
    ).fetchall()


def test_valid_rows_are_pending_in_input_order(journal: Journal) -> None:
    rows = [source_row(i) for i in range(5)]
    counts = intake(rows, journal, RUN, Defaults())
    assert counts == IntakeCounts(rows_total=5, valid=5, invalid=0, duplicate_in_file=0)
    assert journal.count_rows(RUN) == {"pending": 5}
    out = list(journal.iter_rows(RUN))
    assert [r.row_number for r in out] == [2, 3, 4, 5, 6]
    # The journal keeps each row's non-empty input values under their canonical names.
    assert [r.raw for r in out] == [{k: v for k, v in r.raw.items() if v} for r in rows]
    assert out[0].pairing is not None and out[0].pairing.customer_id == "CUST000000"
    assert [seq for seq, _ in journal.open_rows(RUN)] == [0, 1, 2, 3, 4]


def test_defaults_are_applied(journal: Journal) -> None:
    intake([source_row(0)], journal, RUN, Defaults(reference_origin="finance", metadata={"team": "emea"}))
    (record,) = journal.iter_rows(RUN)
    assert record.pairing is not None
    assert record.pairing.reference_origin == "finance"
    assert record.pairing.metadata == {"team": "emea"}


def test_invalid_rows_carry_every_problem(journal: Journal) -> None:
    bad = source_row(1, source_type="bitcoin")
    bad = type(bad)(
        bad.source_file,
        bad.sheet,
        bad.row_number,
        bad.raw,
        {**bad.fields, "customer_id": "123"},
        cell_errors=("cell problem",),
    )
    counts = intake([source_row(0), bad], journal, RUN, Defaults())
    assert (counts.valid, counts.invalid, counts.rows_total) == (1, 1, 2)
    assert counts.invalid_ratio == 0.5
    record = list(journal.iter_rows(RUN))[1]
    assert record.status is RowStatus.INVALID
    assert record.error_code == "INVALID_ROW"
    assert record.pairing is None
    assert record.error_detail is not None
    problems = record.error_detail.split("; ")
    assert problems[0] == "cell problem"
    assert any("'123' is not a valid id" in p for p in problems)
    assert any("'bitcoin' is not a payment source type" in p for p in problems)


def test_every_later_duplicate_names_the_first_occurrence(journal: Journal) -> None:
    rows = [
        source_row(0, file="a.csv", sheet="", row_number=2),
        source_row(1, file="a.csv", row_number=3),
        source_row(0, file="a.csv", row_number=4),
        source_row(0, file="b.xlsx", sheet="June", row_number=9),
    ]
    counts = intake(rows, journal, RUN, Defaults())
    assert (counts.valid, counts.duplicate_in_file) == (2, 2)
    assert statuses(journal) == [
        (2, "pending", None),
        (3, "pending", None),
        (4, "duplicate_in_file", "same pairing as a.csv row 2"),
        (9, "duplicate_in_file", "same pairing as a.csv row 2"),
    ]
    dup = list(journal.iter_rows(RUN))[2]
    assert dup.error_code == "DUPLICATE_IN_FILE"
    assert dup.pairing is not None  # the report still shows what the row asked for


def test_duplicates_are_found_across_batches(journal: Journal) -> None:
    rows = [
        source_row(0, file="a.xlsx", sheet="Q1", row_number=2),
        source_row(1, file="a.xlsx", sheet="Q1", row_number=3),
        source_row(2, file="a.xlsx", sheet="Q1", row_number=4),
        source_row(1, file="a.xlsx", sheet="Q2", row_number=2),  # same batch as row 4
        source_row(0, file="b.csv", row_number=5),  # first occurrence two batches back
        source_row(0, file="b.csv", row_number=6),
    ]
    counts = intake(rows, journal, RUN, Defaults(), batch_size=2)
    assert (counts.rows_total, counts.valid, counts.duplicate_in_file) == (6, 3, 3)
    details = [d for _, s, d in statuses(journal) if s == "duplicate_in_file"]
    assert details == [
        "same pairing as a.xlsx [Q1] row 3",
        "same pairing as a.xlsx [Q1] row 2",
        "same pairing as a.xlsx [Q1] row 2",
    ]
    assert journal.count_open(RUN) == 3


def test_duplicate_within_one_batch(journal: Journal) -> None:
    rows = [source_row(0, row_number=2), source_row(0, row_number=3), source_row(0, row_number=4)]
    intake(rows, journal, RUN, Defaults(), batch_size=100)
    assert [d for *_, d in statuses(journal)] == [
        None,
        "same pairing as in.csv row 2",
        "same pairing as in.csv row 2",
    ]


def test_email_duplicates_ignore_case(journal: Journal) -> None:
    rows = [source_row(0, email="Ann@Example.com"), source_row(0, email="ann@example.COM")]
    counts = intake(rows, journal, RUN, Defaults())
    assert counts.duplicate_in_file == 1


def test_invalid_first_occurrence_does_not_make_later_rows_duplicates(journal: Journal) -> None:
    bad = source_row(0)
    bad = type(bad)(bad.source_file, bad.sheet, 2, bad.raw, bad.fields, cell_errors=("lost digits",))
    counts = intake([bad, source_row(0, row_number=3)], journal, RUN, Defaults())
    assert (counts.invalid, counts.valid, counts.duplicate_in_file) == (1, 1, 0)


def test_same_customer_other_source_is_not_a_duplicate(journal: Journal) -> None:
    counts = intake([source_row(0, source=1), source_row(0, source=2)], journal, RUN, Defaults())
    assert counts.duplicate_in_file == 0


def test_empty_input(journal: Journal) -> None:
    counts = intake([], journal, RUN, Defaults())
    assert counts == IntakeCounts()
    assert counts.invalid_ratio == 0.0
    assert not journal.has_rows(RUN)


def test_batches_are_flushed(journal: Journal) -> None:
    counts = intake((source_row(i) for i in range(7)), journal, RUN, Defaults(), batch_size=3)
    assert counts.rows_total == 7
    assert [r.seq for r in journal.iter_rows(RUN)] == list(range(7))


def test_each_input_is_hashed_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The resume fingerprint and the report's sha256 are one digest of the file, taken once;
    a changed file is hashed again."""
    import hashlib

    from importer.loader import formats
    from importer.pipeline import inputs_fingerprint

    path = tmp_path / "in.csv"
    path.write_text(
        "customer_id,payment_source_type,payment_source_id\nCUST000001,stripe_payments,PSRC000001\n"
    )
    calls: list[str] = []
    real = hashlib.sha256

    def counting(*args: Any) -> Any:
        calls.append("sha256")
        return real(*args)

    monkeypatch.setattr(formats, "_DIGESTS", {})
    monkeypatch.setattr(formats.hashlib, "sha256", counting)
    loader = Loader([str(path)])
    inputs_fingerprint(loader)
    hashed = len(calls)
    rows = list(loader)
    assert len(rows) == 1
    (info,) = loader.file_infos
    assert info.sha256 == real(path.read_bytes()).hexdigest()
    assert len(calls) == hashed  # the loader took the digest the fingerprint had made
    path.write_text(path.read_text() + "CUST000002,stripe_payments,PSRC000002\n")
    assert formats.known_sha256(str(path)) is None
