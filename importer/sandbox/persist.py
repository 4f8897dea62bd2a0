"""Optional SQLite persistence of the sandbox state (stdlib sqlite3, WAL, write-through).

Every mutation of the store is written at once, so the state survives a restart of the sandbox:
seed data, created records, imports (with their inputs) and issued tokens (only their SHA-256).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

Record = dict[str, Any]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    type TEXT NOT NULL, id TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (type, id));
CREATE TABLE IF NOT EXISTS import_inputs (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (digest TEXT PRIMARY KEY, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _dump(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


class SqliteState:
    def __init__(self, path: str) -> None:
        self.path = path
        # isolation_level=None: autocommit, so each statement is its own transaction (write-through).
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # Records ---------------------------------------------------------------------------------

    def load_records(self) -> Iterable[tuple[str, Record]]:
        for type_, data in self._db.execute("SELECT type, data FROM records ORDER BY rowid"):
            yield type_, json.loads(data)

    def upsert(self, type_: str, record: Record) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO records (type, id, data) VALUES (?, ?, ?)",
            (type_, record["id"], _dump(record)),
        )

    def upsert_many(self, items: Iterable[tuple[str, Record]]) -> None:
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO records (type, id, data) VALUES (?, ?, ?)",
                ((t, r["id"], _dump(r)) for t, r in items),
            )

    def delete(self, type_: str, id_: str) -> None:
        self._db.execute("DELETE FROM records WHERE type = ? AND id = ?", (type_, id_))

    def delete_types(self, types: Iterable[str]) -> None:
        with self._transaction():
            for type_ in types:
                self._db.execute("DELETE FROM records WHERE type = ?", (type_,))
            self._db.execute("DELETE FROM import_inputs")

    # Import inputs, tokens, meta -----------------------------------------------------------------

    def save_inputs(self, id_: str, inputs: list[Record]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO import_inputs (id, data) VALUES (?, ?)", (id_, _dump(inputs))
        )

    def load_inputs(self) -> dict[str, list[Record]]:
        return {id_: json.loads(data) for id_, data in self._db.execute("SELECT id, data FROM import_inputs")}

    def save_token(self, digest: str, expires_at: float) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO tokens (digest, expires_at) VALUES (?, ?)", (digest, expires_at)
        )

    def load_tokens(self) -> dict[str, float]:
        return dict(self._db.execute("SELECT digest, expires_at FROM tokens"))

    def expire_tokens(self, now: float) -> None:
        self._db.execute("UPDATE tokens SET expires_at = ? WHERE expires_at > ?", (now, now))

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
