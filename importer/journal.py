"""The SQLite journal: every input row of every run, and the state of every pairing.

Two tables carry the whole story of a run, so the report can be rebuilt from the journal at
any time and a crashed run can be resumed:

    rows      one line per input row of a run (in input order, `seq`): where it came from, its
              original cells, and its status/outcome.
    pairings  one line per (target API, pairing key), across runs: pending → sending →
              created | already_exists | failed. `sending` is committed *before* the POST
              leaves, so after a kill -9 a row in `sending` is known to have an unknown outcome
              and is settled by a look-up before anything is re-sent.

WAL mode with synchronous=NORMAL survives a killed process (only a power cut can lose the
last commits). Writes from the pipeline are single-threaded (one asyncio loop), so one
connection is enough.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from importer.columns import REPORT_COLUMNS
from importer.errors import PreflightError
from importer.models import Outcome, Pairing, RowStatus

__all__ = ["REPORT_COLUMNS", "Journal", "RowRecord"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    command TEXT NOT NULL,
    target TEXT NOT NULL,
    inputs_fingerprint TEXT NOT NULL,
    state TEXT NOT NULL,              -- running | finished | aborted | interrupted | abandoned
    intake_done INTEGER NOT NULL DEFAULT 0,  -- every input row is in `rows`
    started_at TEXT NOT NULL,
    finished_at TEXT,
    summary_json TEXT
);
CREATE TABLE IF NOT EXISTS rows (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    source_file TEXT NOT NULL,
    sheet TEXT NOT NULL,
    row_number INTEGER NOT NULL,
    raw_json TEXT NOT NULL,           -- columns.input_values(row): canonical names, then extras
    pairing_key TEXT,
    resolved_key TEXT,                -- an e-mail row's key once its customer id is known
    pairing_json TEXT,
    status TEXT NOT NULL,
    customer_payment_source_id TEXT,
    customer_id TEXT,
    http_status INTEGER,
    error_code TEXT,
    error_detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, seq)
);
-- (run_id, pairing_key, seq) serves "the first row with this key" from the index alone; without
-- seq, SQLite walks the primary key in seq order for ORDER BY seq LIMIT 1: quadratic intake.
DROP INDEX IF EXISTS rows_by_key;
CREATE INDEX IF NOT EXISTS rows_by_key_seq ON rows (run_id, pairing_key, seq);
-- When this machine sent its recent /api requests (wall clock), so the next run starts with the
-- rate windows the server still holds (docs/rate-limits.md). Pruned to one average window.
CREATE TABLE IF NOT EXISTS send_stamps (
    target TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    sent_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS send_stamps_by_time ON send_stamps (target, sent_at);
CREATE TABLE IF NOT EXISTS pairings (
    target TEXT NOT NULL,
    pairing_key TEXT NOT NULL,
    state TEXT NOT NULL,              -- sending | created | already_exists | failed
    customer_payment_source_id TEXT,
    customer_id TEXT,
    run_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (target, pairing_key)
);
-- `importer undo`: one line per wallet entry an undo deleted or is deleting. `deleting` is
-- committed before the DELETE leaves (like `sending`), `deleted`/`already_deleted` after the
-- answer, so a killed undo looks the record up before it sends anything again, and a second
-- undo of the same run sends nothing.
CREATE TABLE IF NOT EXISTS deletions (
    target TEXT NOT NULL,
    customer_payment_source_id TEXT NOT NULL,
    pairing_key TEXT NOT NULL,
    state TEXT NOT NULL,              -- deleting | deleted | already_deleted
    run_id TEXT NOT NULL,             -- the undo run
    updated_at TEXT NOT NULL,
    PRIMARY KEY (target, customer_payment_source_id)
);
"""

# Row statuses that are final for a resumed run (or undo): the row is not dispatched again.
FINAL_ROW_STATUSES = frozenset(
    {
        RowStatus.CREATED,
        RowStatus.ALREADY_EXISTS,
        RowStatus.INVALID,
        RowStatus.DUPLICATE_IN_FILE,
        RowStatus.UPDATED,
        RowStatus.SKIPPED,
        RowStatus.DELETED,
        RowStatus.ALREADY_DELETED,
    }
)
_FINAL_SQL = ", ".join(f"'{s.value}'" for s in sorted(FINAL_ROW_STATUSES))
_ROW_STATUS_VALUES = frozenset(s.value for s in RowStatus)
_KEYS_PER_QUERY = 500  # well under SQLite's bound on parameters per statement


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class RowRecord:
    """One row as the report shows it. `raw` holds its input values keyed by canonical field
    name, then its other columns by header (`columns.input_values`); a journal written before
    0.2 keyed them all by the input's headers."""

    seq: int
    source_file: str
    sheet: str
    row_number: int
    raw_json: str
    status: RowStatus
    pairing_json: str | None
    customer_payment_source_id: str | None
    customer_id: str | None
    http_status: int | None
    error_code: str | None
    error_detail: str | None
    attempts: int
    changed_fields: str | None = None

    @property
    def raw(self) -> dict[str, str]:
        """Decoded on each use: the report needs it only for failing rows and rows without a
        pairing, and decoding every row's JSON was a tenth of writing the report."""
        values: dict[str, str] = json.loads(self.raw_json)
        return values

    @property
    def pairing(self) -> Pairing | None:
        return Pairing.from_json(self.pairing_json) if self.pairing_json else None


@dataclass(frozen=True, slots=True)
class PairingState:
    state: str
    customer_payment_source_id: str | None
    customer_id: str | None
    run_id: str


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: str
    command: str
    target: str
    inputs_fingerprint: str
    state: str
    started_at: str
    finished_at: str | None


class Journal:
    """A thin, typed layer over the SQLite file. Open with `Journal.open(path)`."""

    def __init__(self, conn: sqlite3.Connection, path: str) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: str | Path) -> Journal:
        p = Path(path)
        try:
            if str(p) != ":memory:":
                p.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=5000")
            conn.executescript(SCHEMA)
            columns = {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
            if "intake_done" not in columns:  # a journal from before 0.1.0's resume fix
                conn.execute("ALTER TABLE runs ADD COLUMN intake_done INTEGER NOT NULL DEFAULT 1")
            row_columns = {r[1] for r in conn.execute("PRAGMA table_info(rows)")}
            if "resolved_key" not in row_columns:
                conn.execute("ALTER TABLE rows ADD COLUMN resolved_key TEXT")
            if "changed_fields" not in row_columns:  # a journal from before `on_existing: update`
                conn.execute("ALTER TABLE rows ADD COLUMN changed_fields TEXT")
            conn.execute(
                "CREATE INDEX IF NOT EXISTS rows_by_resolved_key ON rows (run_id, resolved_key, seq)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise PreflightError(
                f"journal {path} cannot be opened for writing ({exc}); "
                "set journal.path in the config to a writable location"
            ) from None
        return cls(conn, str(p))

    @classmethod
    def reader(cls, path: str) -> Journal:
        """A second, read-only connection to an open journal, for another thread: the schema is
        the opener's business, and this one never writes."""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        return cls(conn, path)

    def close(self) -> None:
        self._conn.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """For modules that keep tables of their own in the journal (importer/bulk/records.py)."""
        return self._conn

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, run_id: str, *, command: str, target: str, inputs_fingerprint: str) -> None:
        self._conn.execute(
            "INSERT INTO runs (run_id, command, target, inputs_fingerprint, state, started_at)"
            " VALUES (?, ?, ?, ?, 'running', ?)",
            (run_id, command, target, inputs_fingerprint, _now()),
        )

    def reopen_run(self, run_id: str) -> None:
        self._conn.execute("UPDATE runs SET state='running', finished_at=NULL WHERE run_id=?", (run_id,))

    def finish_run(self, run_id: str, state: str, summary: dict[str, Any] | None = None) -> None:
        self._conn.execute(
            "UPDATE runs SET state=?, finished_at=?, summary_json=? WHERE run_id=?",
            (state, _now(), json.dumps(summary) if summary is not None else None, run_id),
        )

    def resumable_run(self, *, command: str, target: str, inputs_fingerprint: str) -> RunInfo | None:
        """The newest run of the same inputs against the same API that did not finish.

        Only a run whose intake completed can be resumed: one killed while reading the files
        has only some of the rows, and nothing of it was sent yet, so it is started afresh.
        """
        row = self._conn.execute(
            "SELECT run_id, command, target, inputs_fingerprint, state, started_at, finished_at FROM runs"
            " WHERE command=? AND target=? AND inputs_fingerprint=? AND intake_done=1"
            " ORDER BY started_at DESC, rowid DESC LIMIT 1",
            (command, target, inputs_fingerprint),
        ).fetchone()
        if row is None or row[4] == "finished":
            return None
        return RunInfo(*row)

    def mark_intake_done(self, run_id: str) -> None:
        self._conn.execute("UPDATE runs SET intake_done=1 WHERE run_id=?", (run_id,))

    def abandon_partial_intakes(self) -> int:
        """Drop the rows of runs killed while reading their input (nothing of them was sent)."""
        with self._tx():
            runs = [
                r[0]
                for r in self._conn.execute(
                    "SELECT run_id FROM runs WHERE intake_done=0 AND state IN ('running', 'interrupted')"
                ).fetchall()
            ]
            for run_id in runs:
                self._conn.execute("DELETE FROM rows WHERE run_id=?", (run_id,))
                self._conn.execute("UPDATE runs SET state='abandoned' WHERE run_id=?", (run_id,))
        return len(runs)

    def run_info(self, run_id: str | None = None) -> RunInfo | None:
        sql = "SELECT run_id, command, target, inputs_fingerprint, state, started_at, finished_at FROM runs"
        row = (
            self._conn.execute(sql + " WHERE run_id=?", (run_id,)).fetchone()
            if run_id
            else self._conn.execute(sql + " ORDER BY started_at DESC, rowid DESC LIMIT 1").fetchone()
        )
        return RunInfo(*row) if row else None

    def recent_runs(self, limit: int = 5) -> list[RunInfo]:
        """The newest runs first (for "which run?" messages)."""
        rows = self._conn.execute(
            "SELECT run_id, command, target, inputs_fingerprint, state, started_at, finished_at FROM runs"
            " ORDER BY started_at DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [RunInfo(*r) for r in rows]

    def run_summary(self, run_id: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT summary_json FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    # -- intake -----------------------------------------------------------------------------
    def add_rows(self, run_id: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """Bulk insert rows: (seq, source_file, sheet, row_number, raw_json, pairing_key,
        pairing_json, status, error_code, error_detail). One transaction per batch."""
        with self._tx():
            self._conn.executemany(
                "INSERT INTO rows (run_id, seq, source_file, sheet, row_number, raw_json, pairing_key,"
                " pairing_json, status, error_code, error_detail) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                ((run_id, *r) for r in rows),
            )

    def first_with_key(self, run_id: str, pairing_key: str) -> tuple[str, str, int] | None:
        return self.first_with_keys(run_id, [pairing_key]).get(pairing_key)

    def first_with_keys(self, run_id: str, pairing_keys: Iterable[str]) -> dict[str, tuple[str, str, int]]:
        """For each key already in the run (not invalid, not a duplicate), where its first row
        came from. One query per 500 keys: intake asks once per batch, not once per row."""
        found: dict[str, tuple[str, str, int]] = {}
        keys = list(dict.fromkeys(pairing_keys))
        for start in range(0, len(keys), _KEYS_PER_QUERY):
            part = keys[start : start + _KEYS_PER_QUERY]
            # SQLite's bare columns next to MIN(seq) come from the row holding that minimum.
            for key, source_file, sheet, row_number, _ in self._conn.execute(
                "SELECT pairing_key, source_file, sheet, row_number, MIN(seq) FROM rows"
                f" WHERE run_id=? AND pairing_key IN ({','.join('?' * len(part))})"
                " AND status NOT IN ('invalid', 'duplicate_in_file') GROUP BY pairing_key",
                (run_id, *part),
            ):
                found[key] = (source_file, sheet, row_number)
        return found

    def earlier_row_with_key(
        self, run_id: str, pairing_key: str, before_seq: int
    ) -> tuple[str, str, int] | None:
        """The first row before `before_seq` that names the same pairing: by its key as written
        (an id row), or by the key its e-mail resolved to (see `set_resolved_key`). The
        dispatcher's duplicate check for rows that only collide once e-mails are resolved."""
        hits = [
            self._conn.execute(
                f"SELECT seq, source_file, sheet, row_number FROM rows WHERE run_id=? AND {column}=?"
                " AND seq<? AND status NOT IN ('invalid', 'duplicate_in_file') ORDER BY seq LIMIT 1",
                (run_id, pairing_key, before_seq),
            ).fetchone()
            for column in ("pairing_key", "resolved_key")  # two index look-ups, not one scan
        ]
        first = min((h for h in hits if h is not None), default=None)
        return (first[1], first[2], first[3]) if first else None

    def begin_chunk(self, run_id: str, target: str, keyed: Sequence[tuple[int, str]]) -> None:
        """prepare.py is about to ask about these rows ((seq, resolved pairing key)) one by one.
        This journal answers each question with a query; BatchedJournal loads them at once."""

    def end_chunk(self) -> None:
        """prepare.py is done with the chunk: what was held back is written."""

    def set_resolved_key(self, run_id: str, seq: int, resolved_key: str) -> None:
        """Record an e-mail row's key once its customer is known, so later rows (and a resumed
        run) find it without keeping every key in memory."""
        self._conn.execute(
            "UPDATE rows SET resolved_key=? WHERE run_id=? AND seq=?", (resolved_key, run_id, seq)
        )

    def location(self, run_id: str, seq: int) -> tuple[str, str, int]:
        """Where row `seq` came from, (file, sheet, row number): what per-row events name."""
        row = self._conn.execute(
            "SELECT source_file, sheet, row_number FROM rows WHERE run_id=? AND seq=?", (run_id, seq)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else ("", "", 0)

    def count_rows(self, run_id: str) -> dict[str, int]:
        return dict(
            self._conn.execute(
                "SELECT status, COUNT(*) FROM rows WHERE run_id=? GROUP BY status", (run_id,)
            ).fetchall()
        )

    def has_rows(self, run_id: str) -> bool:
        return (
            self._conn.execute("SELECT 1 FROM rows WHERE run_id=? LIMIT 1", (run_id,)).fetchone() is not None
        )

    # -- dispatch ---------------------------------------------------------------------------
    def open_rows(self, run_id: str, batch: int = 500) -> Iterator[tuple[int, Pairing]]:
        """Rows still to settle, in input order, read in pages so memory stays flat."""
        last = -1
        while True:
            page = self._conn.execute(
                "SELECT seq, pairing_json FROM rows WHERE run_id=? AND seq>? AND pairing_json IS NOT NULL"
                f" AND status NOT IN ({_FINAL_SQL}) ORDER BY seq LIMIT ?",
                (run_id, last, batch),
            ).fetchall()
            if not page:
                return
            for seq, pj in page:
                yield seq, Pairing.from_json(pj)
            last = page[-1][0]

    def count_open(self, run_id: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM rows WHERE run_id=? AND pairing_json IS NOT NULL"
            f" AND status NOT IN ({_FINAL_SQL})",
            (run_id,),
        ).fetchone()
        return int(row[0])

    def pairing_state(self, target: str, pairing_key: str) -> PairingState | None:
        row = self._conn.execute(
            "SELECT state, customer_payment_source_id, customer_id, run_id FROM pairings"
            " WHERE target=? AND pairing_key=?",
            (target, pairing_key),
        ).fetchone()
        return PairingState(*row) if row else None

    def mark_sending(self, target: str, pairing_key: str, run_id: str, customer_id: str) -> None:
        """Committed before the POST leaves: after a crash this pairing's outcome is unknown."""
        self._conn.execute(
            "INSERT INTO pairings (target, pairing_key, state, customer_id, run_id, updated_at)"
            " VALUES (?, ?, 'sending', ?, ?, ?) ON CONFLICT (target, pairing_key) DO UPDATE SET"
            " state='sending', customer_id=excluded.customer_id, run_id=excluded.run_id,"
            " updated_at=excluded.updated_at",
            (target, pairing_key, customer_id, run_id, _now()),
        )

    def mark_pairing(self, target: str, pairing_key: str, run_id: str, outcome: Outcome) -> None:
        state = outcome.status.value
        self._conn.execute(
            "INSERT INTO pairings (target, pairing_key, state, customer_payment_source_id, customer_id,"
            " run_id, updated_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT (target, pairing_key) DO UPDATE SET"
            " state=excluded.state, customer_payment_source_id=excluded.customer_payment_source_id,"
            " customer_id=excluded.customer_id, run_id=excluded.run_id, updated_at=excluded.updated_at",
            (
                target,
                pairing_key,
                state,
                outcome.customer_payment_source_id,
                outcome.customer_id,
                run_id,
                _now(),
            ),
        )

    def set_outcome(self, run_id: str, seq: int, outcome: Outcome) -> None:
        self._conn.execute(
            "UPDATE rows SET status=?, customer_payment_source_id=?, customer_id=?, http_status=?,"
            " error_code=?, error_detail=?, attempts=attempts+?, changed_fields=? WHERE run_id=? AND seq=?",
            (
                outcome.status.value,
                outcome.customer_payment_source_id,
                outcome.customer_id,
                outcome.http_status,
                outcome.error_code,
                outcome.error_detail,
                outcome.attempts,
                outcome.changed_fields,
                run_id,
                seq,
            ),
        )

    def set_many_outcomes(self, run_id: str, items: Iterable[tuple[int, Outcome]]) -> None:
        with self._tx():
            for seq, outcome in items:
                self.set_outcome(run_id, seq, outcome)

    def settled_through(self, run_id: str, after: int) -> int:
        """The last seq up to which every row after `after` that is in the journal yet has an
        outcome (`after` itself if the next row has none)."""
        row = self._conn.execute(
            "SELECT seq FROM rows WHERE run_id=? AND seq>? AND status IN ('pending', 'sending')"
            " ORDER BY seq LIMIT 1",
            (run_id, after),
        ).fetchone()
        if row is not None:
            return int(row[0]) - 1
        (last,) = self._conn.execute("SELECT MAX(seq) FROM rows WHERE run_id=?", (run_id,)).fetchone()
        return max(after, int(last)) if last is not None else after

    def intake_done(self, run_id: str) -> bool:
        row = self._conn.execute("SELECT intake_done FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return bool(row and row[0])

    def mark_unsettled(self, run_id: str, status: RowStatus, detail: str | None) -> int:
        """Give every row that has no final outcome yet the status `status` (e.g. not_attempted)."""
        cur = self._conn.execute(
            "UPDATE rows SET status=?, error_detail=COALESCE(error_detail, ?) WHERE run_id=?"
            " AND status IN ('pending', 'sending')",
            (status.value, detail, run_id),
        )
        return cur.rowcount

    # -- rate windows across processes -------------------------------------------------------
    def add_send_stamps(self, target: str, stamps: Iterable[tuple[str, float]], keep_s: float) -> None:
        """Record (endpoint, wall-clock send time) pairs in one transaction, and forget those older
        than `keep_s` (no server window still holds them)."""
        items = list(stamps)
        if not items:
            return
        with self._tx():
            self._conn.executemany(
                "INSERT INTO send_stamps (target, endpoint, sent_at) VALUES (?, ?, ?)",
                ((target, endpoint, at) for endpoint, at in items),
            )
            self._conn.execute(
                "DELETE FROM send_stamps WHERE target=? AND sent_at<?", (target, items[-1][1] - keep_s)
            )

    def recent_send_stamps(self, target: str, since: float) -> list[tuple[str, float]]:
        rows = self._conn.execute(
            "SELECT endpoint, sent_at FROM send_stamps WHERE target=? AND sent_at>=? ORDER BY sent_at",
            (target, since),
        ).fetchall()
        return [(str(e), float(t)) for e, t in rows]

    # -- undo -------------------------------------------------------------------------------
    def add_settled_rows(self, run_id: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """Bulk insert rows that already name their record (an undo's rows): (seq, source_file,
        sheet, row_number, raw_json, pairing_key, pairing_json, status,
        customer_payment_source_id, customer_id, error_code, error_detail)."""
        with self._tx():
            self._conn.executemany(
                "INSERT INTO rows (run_id, seq, source_file, sheet, row_number, raw_json, pairing_key,"
                " pairing_json, status, customer_payment_source_id, customer_id, error_code, error_detail)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                ((run_id, *r) for r in rows),
            )

    def open_undo_rows(
        self, run_id: str, batch: int = 500
    ) -> Iterator[tuple[int, str | None, str, str, str]]:
        """An undo's rows still to settle: (seq, record id, customer id, pairing key, pairing json).
        The record id is None for a row created without one known (imports, no read-back)."""
        last = -1
        while True:
            page = self._conn.execute(
                "SELECT seq, customer_payment_source_id, customer_id, pairing_key, pairing_json FROM rows"
                " WHERE run_id=? AND seq>? AND pairing_key IS NOT NULL"
                f" AND status NOT IN ({_FINAL_SQL}) ORDER BY seq LIMIT ?",
                (run_id, last, batch),
            ).fetchall()
            if not page:
                return
            yield from page
            last = page[-1][0]

    def count_open_undo(self, run_id: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM rows WHERE run_id=? AND pairing_key IS NOT NULL"
            f" AND status NOT IN ({_FINAL_SQL})",
            (run_id,),
        ).fetchone()
        return int(row[0])

    def deletion_state(self, target: str, cps_id: str) -> tuple[str, str] | None:
        """(state, undo run id) of a record an undo deleted or was deleting, or None."""
        row = self._conn.execute(
            "SELECT state, run_id FROM deletions WHERE target=? AND customer_payment_source_id=?",
            (target, cps_id),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def mark_deleting(self, target: str, cps_id: str, pairing_key: str, run_id: str) -> None:
        """Committed before the DELETE leaves: after a crash its outcome is looked up first."""
        self._conn.execute(
            "INSERT INTO deletions (target, customer_payment_source_id, pairing_key, state, run_id,"
            " updated_at) VALUES (?,?,?,'deleting',?,?) ON CONFLICT (target, customer_payment_source_id)"
            " DO UPDATE SET state='deleting', run_id=excluded.run_id, updated_at=excluded.updated_at",
            (target, cps_id, pairing_key, run_id, _now()),
        )

    def mark_deleted(self, target: str, cps_id: str, pairing_key: str, run_id: str, state: str) -> None:
        """The record is gone (`deleted` by us, or `already_deleted`). Its pairing becomes
        `undone`, if the journal still knows it by this record, so a rerun of the original file
        does not take it for existing (see `run --recreate-undone`)."""
        with self._tx():
            self._conn.execute(
                "INSERT INTO deletions (target, customer_payment_source_id, pairing_key, state, run_id,"
                " updated_at) VALUES (?,?,?,?,?,?) ON CONFLICT (target, customer_payment_source_id)"
                " DO UPDATE SET state=excluded.state, run_id=excluded.run_id, updated_at=excluded.updated_at",
                (target, cps_id, pairing_key, state, run_id, _now()),
            )
            self._conn.execute(
                "UPDATE pairings SET state='undone', run_id=?, updated_at=? WHERE target=? AND pairing_key=?"
                " AND customer_payment_source_id=?",
                (run_id, _now(), target, pairing_key, cps_id),
            )

    # -- report -----------------------------------------------------------------------------
    def iter_rows(
        self, run_id: str, batch: int = 2000, *, after: int = -1, upto: int | None = None
    ) -> Iterator[RowRecord]:
        """The run's rows in input order: those after seq `after`, up to seq `upto` if given."""
        last = after
        end = upto if upto is not None else 2**63 - 1
        while True:
            page = self._conn.execute(
                "SELECT seq, source_file, sheet, row_number, raw_json, status, pairing_json,"
                " customer_payment_source_id, customer_id, http_status, error_code, error_detail, attempts,"
                " changed_fields FROM rows WHERE run_id=? AND seq>? AND seq<=? ORDER BY seq LIMIT ?",
                (run_id, last, end, batch),
            ).fetchall()
            if not page:
                return
            for r in page:
                yield RowRecord(
                    seq=r[0],
                    source_file=r[1],
                    sheet=r[2],
                    row_number=r[3],
                    raw_json=r[4],
                    # A row still pending/sending (a report rebuilt mid-run) was not settled.
                    status=RowStatus(r[5]) if r[5] in _ROW_STATUS_VALUES else RowStatus.NOT_ATTEMPTED,
                    pairing_json=r[6],
                    customer_payment_source_id=r[7],
                    customer_id=r[8],
                    http_status=r[9],
                    error_code=r[10],
                    error_detail=r[11],
                    attempts=r[12],
                    changed_fields=r[13],
                )
            last = page[-1][0]

    # -- helpers ----------------------------------------------------------------------------
    class _Tx:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> None:
            self.conn.execute("BEGIN")

        def __exit__(self, exc_type: object, *_: object) -> None:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> Journal._Tx:
        return Journal._Tx(self._conn)
