"""Pass one of every command: read, validate and de-duplicate all rows into the journal.

Nothing is sent until every row has been read and checked, so a wrong file (too many invalid
rows) stops before the first request and never half-imports. Rows go to the journal in
batches, which keeps memory flat however long the file is and gives the report its input order.
(The imports strategy may stream instead: importer/bulk/stream.py runs this on a thread while
its first imports are posted.)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from importer.columns import input_values
from importer.journal import Journal
from importer.log import row_events
from importer.models import RowStatus, SourceRow, row_where
from importer.validator import Defaults, validate_row

log = structlog.get_logger("importer")


@dataclass(slots=True)
class IntakeCounts:
    rows_total: int = 0
    valid: int = 0
    invalid: int = 0
    duplicate_in_file: int = 0

    @property
    def invalid_ratio(self) -> float:
        return self.invalid / self.rows_total if self.rows_total else 0.0


def intake(
    rows: Iterable[SourceRow],
    journal: Journal,
    run_id: str,
    defaults: Defaults,
    *,
    batch_size: int = 2000,
) -> IntakeCounts:
    counts = IntakeCounts()
    batch: list[tuple[object, ...]] = []
    # First occurrence of each key within the batch not yet written; earlier batches are
    # found through the journal's index.
    pending_keys: dict[str, str] = {}

    def flush() -> None:
        journal.add_rows(run_id, batch)
        batch.clear()
        pending_keys.clear()

    verbose = row_events()  # -v: one event per row; checked once, this loop is hot
    for row in rows:
        seq = counts.rows_total
        counts.rows_total += 1
        checked = validate_row(row, defaults)
        key: str | None = None
        pairing_json: str | None = None
        if isinstance(checked, list):
            counts.invalid += 1
            status, code, detail = RowStatus.INVALID.value, "INVALID_ROW", "; ".join(checked)
        else:
            key, pairing_json = checked.key(), checked.to_json()
            first = pending_keys.get(key)
            if first is None:
                hit = journal.first_with_key(run_id, key)
                first = row_where(*hit) if hit else None
            if first is not None:
                counts.duplicate_in_file += 1
                status, code = RowStatus.DUPLICATE_IN_FILE.value, "DUPLICATE_IN_FILE"
                detail = f"same pairing as {first}"
            else:
                counts.valid += 1
                pending_keys[key] = row_where(row.source_file, row.sheet, row.row_number)
                status, code, detail = "pending", None, None
        if verbose:
            log.info(
                f"row.{'valid' if status == 'pending' else status}",
                file=row.source_file,
                sheet=row.sheet,
                row=row.row_number,
                detail=detail,
            )
        raw_json = json.dumps(input_values(row), ensure_ascii=False)
        batch.append((seq, row.source_file, row.sheet, row.row_number, raw_json, key, pairing_json,
                      status, code, detail))  # fmt: skip
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return counts
