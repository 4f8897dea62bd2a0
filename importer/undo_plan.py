"""What an undo is about: the rows of the run it undoes, as rows of its own (pure, plus reading
the run from the journal or from its results.csv).

Every row of the original run becomes one row of the undo, in the same order, so the undo's
report accounts for the same rows. Only rows the run `created` are candidates (`pending`);
every other row is `skipped` at once and never touched: `already_exists` entries were there
before the run, and invalid or failed rows created nothing.

Before a DELETE, the record's `metadata.importer_key` must be the one its pairing was created
with (`ownership_problem`); a record whose key is missing or different is someone else's.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from importer.errors import SourceError
from importer.journal import Journal
from importer.models import Pairing, RowStatus
from importer.neutralize import unneutralize
from importer.planner import IMPORTER_KEY, importer_key

NOT_CREATED = "NOT_CREATED_BY_RUN"
NOT_OURS = "NOT_CREATED_BY_IMPORTER"

# results.csv columns an undo needs; `sheet`/`row_number` may also be spelled `source_sheet`/`source_row`.
_NEEDED = ("status", "customer_payment_source_id", "customer_id")
_SOURCE_COLUMNS = ("payment_source_type", "payment_source_id", "payment_source_token")

# A row for `Journal.add_settled_rows`.
UndoRow = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class UndoSource:
    """Where the undo's rows come from: a run in the journal, or a run's results.csv."""

    run_id: str | None = None
    results: Path | None = None

    @property
    def fingerprint(self) -> str:
        """Identifies "the same undo" for resume (same run, or same results.csv content)."""
        if self.run_id is not None:
            return f"undo-run:{self.run_id}"
        assert self.results is not None
        return f"undo-results:{hashlib.sha256(self.results.read_bytes()).hexdigest()[:24]}"

    def describe(self) -> str:
        return f"run {self.run_id}" if self.run_id else f"the run reported in {self.results}"


def expected_importer_key(pairing: Pairing, customer_id: str) -> str:
    """The `metadata.importer_key` the record was created with (planner.create_body)."""
    own = pairing.metadata.get(IMPORTER_KEY)
    return own if isinstance(own, str) and own else importer_key(pairing, customer_id)


def ownership_problem(metadata: Mapping[str, Any], expected: str) -> str | None:
    """Why this record must not be deleted, or None when it is the one the run created."""
    found = metadata.get(IMPORTER_KEY)
    if found is None or found == "":
        return "the record has no metadata.importer_key: it was not created by the importer; left alone"
    if found != expected:
        return (
            f"the record's metadata.importer_key is {found}, not {expected} (this row's pairing): "
            "another record or another pairing; left alone"
        )
    return None


def _row(
    seq: int,
    where: tuple[str, str, int],
    raw: Mapping[str, Any],
    pairing: Pairing | None,
    customer_id: str | None,
    cps_id: str | None,
    status: str,
    run_label: str,
) -> UndoRow:
    source_file, sheet, row_number = where
    raw_json = json.dumps(dict(raw), ensure_ascii=False)
    pairing_json = pairing.to_json() if pairing is not None else None
    if status != RowStatus.CREATED.value:
        detail = f"{status} in {run_label}: only rows the run created are undone; left alone"
        return (seq, source_file, sheet, row_number, raw_json, None, pairing_json,
                RowStatus.SKIPPED.value, cps_id, customer_id, NOT_CREATED, detail)  # fmt: skip
    if pairing is None or not customer_id:
        detail = "created, but its pairing or customer id is not known; delete it by hand"
        return (seq, source_file, sheet, row_number, raw_json, None, pairing_json,
                RowStatus.FAILED.value, cps_id, customer_id, "RECORD_UNKNOWN", detail)  # fmt: skip
    return (seq, source_file, sheet, row_number, raw_json, pairing.key(customer_id), pairing_json,
            "pending", cps_id, customer_id, None, None)  # fmt: skip


def rows_from_journal(journal: Journal, run_id: str) -> Iterator[UndoRow]:
    label = f"run {run_id}"
    for record in journal.iter_rows(run_id):
        customer_id = record.customer_id or (record.pairing.customer_id if record.pairing else None)
        yield _row(
            record.seq,
            (record.source_file, record.sheet, record.row_number),
            record.raw,
            record.pairing,
            customer_id,
            record.customer_payment_source_id,
            record.status.value,
            label,
        )


def _cell(line: Mapping[str, str | None], *names: str) -> str | None:
    for name in names:
        value = line.get(name)
        if value:
            return unneutralize(value.strip()) or None
    return None


def rows_from_results(path: Path) -> Iterator[UndoRow]:
    """The rows of a results.csv an earlier `importer run` wrote. Raises SourceError when the
    file is not one (naming what is missing)."""
    label = f"{path}"
    try:
        fh = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise SourceError(
            str(path), f"cannot be read ({exc.strerror or exc}); check the --results path"
        ) from None
    with fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in _NEEDED if c not in header]
        if missing or not any(c in header for c in _SOURCE_COLUMNS):
            needs = ", ".join(missing or _SOURCE_COLUMNS)
            raise SourceError(
                str(path),
                f"not a results.csv of `importer run` (missing column(s): {needs}); "
                "pass --results the results.csv from the run's report folder",
            )
        for seq, line in enumerate(reader):
            customer_id = _cell(line, "customer_id")
            type_, source_id = _cell(line, "payment_source_type"), _cell(line, "payment_source_id")
            token = _cell(line, "payment_source_token")
            pairing = None
            if customer_id and ((type_ and source_id) or token):
                pairing = Pairing(
                    customer_id=customer_id,
                    customer_email=_cell(line, "customer_email"),
                    payment_source_type=type_ if source_id else None,
                    payment_source_id=source_id,
                    payment_source_token=None if source_id else token,
                    reference=_cell(line, "reference"),
                )
            row_text = _cell(line, "row_number", "source_row") or "0"
            where = (
                _cell(line, "source_file") or path.name,
                _cell(line, "sheet", "source_sheet") or "",
                int(row_text) if row_text.isdigit() else 0,
            )
            raw = {k: v for k, v in line.items() if k is not None}
            status = (_cell(line, "status") or "").lower()
            yield _row(seq, where, raw, pairing, customer_id, _cell(line, "customer_payment_source_id"),
                       status, label)  # fmt: skip
