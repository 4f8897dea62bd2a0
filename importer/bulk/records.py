"""The journal's record of a run's imports: each import and its rows, written BEFORE the POST.

    bulk_imports  one line per import (chunk) of a run, by its unique `reference`:
                  posting → running → processed → reconciled, or split | refused | not_found.
                  `posting` with no `import_id` means the POST may or may not have landed: the
                  import is looked up by its reference before anything is sent again.
    bulk_rows     the rows of an import, in input order (`position` = index in `inputs`).

The rows' pairings go to `sending` in the same transaction (journal.py's protocol), so a REST
run or a pre-check after a crash also knows their outcome is unknown until looked up.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from importer.bulk.chunking import chunk_reference, import_input
from importer.journal import Journal
from importer.models import Outcome, Pairing

SCHEMA = """
CREATE TABLE IF NOT EXISTS bulk_imports (
    reference TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    chunk_no INTEGER NOT NULL,
    attempt INTEGER NOT NULL,          -- 0: first send; 1: rows sent again after an interruption
    rows INTEGER NOT NULL,
    state TEXT NOT NULL,
    import_id TEXT,
    status TEXT,                       -- the server's last status (completed | interrupted | ...)
    summary_json TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bulk_imports_by_run ON bulk_imports (run_id, state);
CREATE TABLE IF NOT EXISTS bulk_rows (
    reference TEXT NOT NULL,
    position INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    pairing_key TEXT NOT NULL,
    importer_key TEXT NOT NULL,
    PRIMARY KEY (reference, position)
);
"""
UNFINISHED = ("posting", "running", "processed")
UNKNOWN = "OUTCOME_UNKNOWN"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class ChunkRow:
    seq: int
    customer_id: str
    pairing_key: str
    importer_key: str
    input: dict[str, Any]
    reference: str | None = None  # the row's own `reference` attribute, for errors_log mapping


def chunk_row(seq: int, pairing: Pairing, customer_id: str, key: str) -> ChunkRow:
    item = import_input(pairing, customer_id)
    metadata = item.get("metadata") or {}
    return ChunkRow(seq, customer_id, key, str(metadata.get("importer_key")), item, pairing.reference)


@dataclass(frozen=True, slots=True)
class ImportRecord:
    reference: str
    run_id: str
    chunk_no: int
    attempt: int
    rows: int
    state: str
    import_id: str | None


class BulkJournal:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._conn: sqlite3.Connection = journal.connection
        self._conn.executescript(SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        # IMMEDIATE: the write lock is taken (waiting up to busy_timeout) before the first read,
        # so a streaming intake committing meanwhile cannot make the upgrade fail (WAL snapshot).
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def new_chunk(self, run_id: str, target: str, rows: list[ChunkRow], attempt: int) -> str:
        """Record an import and its rows, and set their pairings `sending`, in one transaction."""
        now = _now()
        with self._tx():
            (last,) = self._conn.execute(
                "SELECT COALESCE(MAX(chunk_no), 0) FROM bulk_imports WHERE run_id=?", (run_id,)
            ).fetchone()
            chunk_no = int(last) + 1
            reference = chunk_reference(run_id, chunk_no)
            self._conn.execute(
                "INSERT INTO bulk_imports (reference, run_id, chunk_no, attempt, rows, state, updated_at)"
                " VALUES (?,?,?,?,?,'posting',?)",
                (reference, run_id, chunk_no, attempt, len(rows), now),
            )
            self._conn.executemany(
                "INSERT INTO bulk_rows (reference, position, seq, customer_id, pairing_key, importer_key)"
                " VALUES (?,?,?,?,?,?)",
                [
                    (reference, i, r.seq, r.customer_id, r.pairing_key, r.importer_key)
                    for i, r in enumerate(rows)
                ],
            )
            self._conn.executemany(
                "INSERT INTO pairings (target, pairing_key, state, customer_id, run_id, updated_at)"
                " VALUES (?, ?, 'sending', ?, ?, ?) ON CONFLICT (target, pairing_key) DO UPDATE SET"
                " state='sending', customer_id=excluded.customer_id, run_id=excluded.run_id,"
                " updated_at=excluded.updated_at",
                [(target, r.pairing_key, r.customer_id, run_id, now) for r in rows],
            )
        return reference

    def set_posted(self, reference: str, import_id: str) -> None:
        self._conn.execute(
            "UPDATE bulk_imports SET state='running', import_id=?, updated_at=? WHERE reference=?",
            (import_id, _now(), reference),
        )

    def set_state(
        self, reference: str, state: str, *, status: str | None = None, summary: dict[str, Any] | None = None
    ) -> None:
        self._conn.execute(
            "UPDATE bulk_imports SET state=?, status=COALESCE(?, status),"
            " summary_json=COALESCE(?, summary_json), updated_at=? WHERE reference=?",
            (state, status, json.dumps(summary) if summary is not None else None, _now(), reference),
        )

    def unfinished(self, run_id: str) -> list[ImportRecord]:
        marks = ",".join("?" * len(UNFINISHED))
        rows = self._conn.execute(
            "SELECT reference, run_id, chunk_no, attempt, rows, state, import_id FROM bulk_imports"
            f" WHERE run_id=? AND state IN ({marks}) ORDER BY chunk_no",
            (run_id, *UNFINISHED),
        ).fetchall()
        return [ImportRecord(*r) for r in rows]

    def unfinished_elsewhere(self, run_id: str, target: str) -> list[ImportRecord]:
        """Unfinished imports of earlier runs against the same API (a run abandoned while it was
        still reading its input, say): waited for before any pre-check, so their records are seen."""
        marks = ",".join("?" * len(UNFINISHED))
        rows = self._conn.execute(
            "SELECT b.reference, b.run_id, b.chunk_no, b.attempt, b.rows, b.state, b.import_id"
            " FROM bulk_imports b JOIN runs r ON r.run_id=b.run_id"
            f" WHERE b.run_id<>? AND r.target=? AND b.state IN ({marks}) ORDER BY b.reference",
            (run_id, target, *UNFINISHED),
        ).fetchall()
        return [ImportRecord(*r) for r in rows]

    def open_rows_after(self, run_id: str, last_seq: int, limit: int = 500) -> list[tuple[int, Pairing]]:
        """Open rows after `last_seq`, as committed now (the streaming intake adds more)."""
        page = self._conn.execute(
            "SELECT seq, pairing_json FROM rows WHERE run_id=? AND seq>? AND pairing_json IS NOT NULL"
            " AND status NOT IN ('created','already_exists','invalid','duplicate_in_file')"
            " ORDER BY seq LIMIT ?",
            (run_id, last_seq, limit),
        ).fetchall()
        return [(seq, Pairing.from_json(pj)) for seq, pj in page]

    def count_open_after(self, run_id: str, last_seq: int) -> int:
        """How many open rows come after `last_seq` (the rows open_rows_after has still to give)."""
        row = self._conn.execute(
            "SELECT COUNT(*) FROM rows WHERE run_id=? AND seq>? AND pairing_json IS NOT NULL"
            " AND status NOT IN ('created','already_exists','invalid','duplicate_in_file')",
            (run_id, last_seq),
        ).fetchone()
        return int(row[0])

    def imports_of(self, run_id: str) -> list[ImportRecord]:
        rows = self._conn.execute(
            "SELECT reference, run_id, chunk_no, attempt, rows, state, import_id FROM bulk_imports"
            " WHERE run_id=? ORDER BY chunk_no",
            (run_id,),
        ).fetchall()
        return [ImportRecord(*r) for r in rows]

    def rows_of(self, reference: str) -> list[ChunkRow]:
        """The import's rows as sent, rebuilt from the journal (pairing + resolved customer)."""
        found = self._conn.execute(
            "SELECT b.seq, b.customer_id, b.pairing_key, r.pairing_json FROM bulk_rows b"
            " JOIN bulk_imports i ON i.reference=b.reference"
            " JOIN rows r ON r.run_id=i.run_id AND r.seq=b.seq WHERE b.reference=? ORDER BY b.position",
            (reference,),
        ).fetchall()
        return [chunk_row(seq, Pairing.from_json(pj), customer, key) for seq, customer, key, pj in found]

    def settle(self, run_id: str, target: str, items: list[tuple[ChunkRow, Outcome]]) -> None:
        """Row outcomes and pairing states of a reconciled import, in one transaction."""
        now = _now()
        with self._tx():
            self._conn.executemany(
                "UPDATE rows SET status=?, customer_payment_source_id=?, customer_id=?, http_status=?,"
                " error_code=?, error_detail=?, attempts=attempts+? WHERE run_id=? AND seq=?",
                [
                    (
                        o.status.value,
                        o.customer_payment_source_id,
                        o.customer_id,
                        o.http_status,
                        o.error_code,
                        o.error_detail,
                        o.attempts,
                        run_id,
                        row.seq,
                    )
                    for row, o in items
                ],
            )
            self._conn.executemany(
                "UPDATE pairings SET state=?, customer_payment_source_id=?, run_id=?, updated_at=?"
                " WHERE target=? AND pairing_key=?",
                [
                    (o.status.value, o.customer_payment_source_id, run_id, now, target, row.pairing_key)
                    for row, o in items
                    # Unknown: the pairing stays `sending`, the next run looks it up first.
                    if o.error_code != UNKNOWN
                ],
            )
