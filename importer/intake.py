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


# json.dumps builds a new encoder on every call made with options; one is enough.
_encode_raw = json.JSONEncoder(ensure_ascii=False).encode


def intake(
    rows: Iterable[SourceRow],
    journal: Journal,
    run_id: str,
    defaults: Defaults,
    *,
    batch_size: int = 2000,
) -> IntakeCounts:
    counts = IntakeCounts()
    # Rows read and checked but not yet written: (row, raw_json, the good row's key and
    # pairing JSON, or the bad row's problems). Each batch is settled at once, so the
    # journal is asked about earlier batches' keys in one query, not one per row.
    checked: list[tuple[SourceRow, str, str | None, str | None, list[str] | None]] = []
    verbose = row_events()  # -v: one event per row; checked once, this loop is hot

    def flush() -> None:
        batch: list[tuple[object, ...]] = []
        # First occurrence of each key within this batch; earlier batches are found through
        # the journal's index.
        pending_keys: dict[str, str] = {}
        earlier = journal.first_with_keys(run_id, (k for _, _, k, _, _ in checked if k is not None))
        for row, raw_json, key, pairing_json, problems in checked:
            seq = counts.rows_total
            counts.rows_total += 1
            if key is None:
                counts.invalid += 1
                status, code, detail = RowStatus.INVALID.value, "INVALID_ROW", "; ".join(problems or ())
            else:
                first = pending_keys.get(key)
                if first is None:
                    hit = earlier.get(key)
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
            batch.append((seq, row.source_file, row.sheet, row.row_number, raw_json, key, pairing_json,
                          status, code, detail))  # fmt: skip
        journal.add_rows(run_id, batch)
        checked.clear()

    for row in rows:
        result = validate_row(row, defaults)
        raw_json = _encode_raw(input_values(row))
        if isinstance(result, list):
            checked.append((row, raw_json, None, None, result))
        else:
            checked.append((row, raw_json, result.key(), result.to_json(), None))
        if len(checked) >= batch_size:
            flush()
    if checked:
        flush()
    return counts
