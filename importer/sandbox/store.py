"""The sandbox's in-memory state: one indexed table per resource type, plus issued tokens.

Records are plain dicts (`id`, `created_at`, `updated_at`, the attributes, and relationship ids
such as `customer_id`). Each table keeps its records sorted by (created_at, id), the default
list order, and hash indexes on the fields lists filter by, so a filtered list is never a scan
of everything when an indexed `_eq`/`_in` filter is present. When a `SqliteState` is attached,
every mutation is written through to it.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import random
import secrets
import string
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from importer.models import PAYMENT_SOURCE_TYPES
from importer.sandbox.persist import Record, SqliteState

CPS = "customer_payment_sources"
CUSTOMERS = "customers"
IMPORTS = "imports"
EXPORTS = "exports"
RESOURCE_TYPES: tuple[str, ...] = (
    "customers",
    "payment_methods",
    *PAYMENT_SOURCE_TYPES,
    CPS,
    IMPORTS,
    EXPORTS,
)
CREATED_TYPES = (CPS, IMPORTS, EXPORTS)  # what the API creates; `reset` clears these and keeps the seed
ID_ALPHABET = string.ascii_letters + string.digits
_BYTE_TO_ALNUM = bytes(ord(ID_ALPHABET[b % len(ID_ALPHABET)]) for b in range(256))


def random_alnum(rng: random.Random, length: int) -> str:
    """`length` letters and digits from `rng` (deterministic for a seeded one, and fast)."""
    return rng.randbytes(length).translate(_BYTE_TO_ALNUM).decode("ascii")


IndexFn = Callable[[Record], Hashable | None]


def source_key(record: Record) -> str | None:
    """The payment source a wallet entry points at: `<type>:<id>` or `token:<token>`."""
    if record.get("payment_source_id"):
        return f"{record['payment_source_type']}:{record['payment_source_id']}"
    if record.get("payment_source_token"):
        return f"token:{record['payment_source_token']}"
    return None


def pair_key(record: Record) -> str | None:
    source = source_key(record)
    return None if source is None else f"{record.get('customer_id')}|{source}"


def _lower_email(record: Record) -> str | None:
    email = record.get("email")
    return email.lower() if isinstance(email, str) else None


def _field(name: str) -> IndexFn:
    return lambda record: record.get(name)


INDEXES: dict[str, dict[str, IndexFn]] = {
    "customers": {"email": _lower_email},
    CPS: {
        name: _field(name)
        for name in (
            "customer_id",
            "payment_method_id",
            "payment_source_token",
            "reference",
            "reference_origin",
        )
    }
    | {"source": source_key, "pair": pair_key},
    IMPORTS: {"status": _field("status"), "reference": _field("reference")},
    EXPORTS: {"status": _field("status")},
}


class Table:
    def __init__(self, type_: str, indexes: dict[str, IndexFn]) -> None:
        self.type = type_
        self.rows: dict[str, Record] = {}
        self._order: list[tuple[str, str]] = []
        self._index_fns = indexes
        self._indexes: dict[str, dict[Hashable, set[str]]] = {name: {} for name in indexes}

    def __len__(self) -> int:
        return len(self.rows)

    def has_index(self, name: str) -> bool:
        return name in self._indexes or name == "id"

    def lookup(self, name: str, value: Hashable) -> set[str]:
        if name == "id":
            return {value} if isinstance(value, str) and value in self.rows else set()
        return self._indexes[name].get(value, set())

    def index_groups(self, name: str) -> dict[Hashable, set[str]]:
        return self._indexes[name]

    def ordered(self) -> Iterator[Record]:
        rows = self.rows
        return (rows[id_] for _, id_ in self._order)

    def insert(self, record: Record, *, keep_order: bool = True) -> None:
        """Add a record; with keep_order=False the caller must call `resort()` afterwards."""
        self.rows[record["id"]] = record
        key = (record["created_at"], record["id"])
        if not keep_order or not self._order or key > self._order[-1]:
            self._order.append(key)  # the usual case: created now, so last
        else:
            bisect.insort(self._order, key)
        if self._index_fns:
            self._index(record, add=True)

    def resort(self) -> None:
        self._order.sort()

    def replace(self, record: Record) -> None:
        old = self.rows[record["id"]]
        self._index(old, add=False)
        self.rows[record["id"]] = record
        self._index(record, add=True)

    def delete(self, id_: str) -> Record | None:
        record = self.rows.pop(id_, None)
        if record is not None:
            position = bisect.bisect_left(self._order, (record["created_at"], id_))
            del self._order[position]
            self._index(record, add=False)
        return record

    def clear(self) -> None:
        self.rows.clear()
        self._order.clear()
        for index in self._indexes.values():
            index.clear()

    def _index(self, record: Record, *, add: bool) -> None:
        for name, fn in self._index_fns.items():
            value = fn(record)
            if value is None:
                continue
            index = self._indexes[name]
            if add:
                index.setdefault(value, set()).add(record["id"])
            else:
                ids = index.get(value)
                if ids is not None:
                    ids.discard(record["id"])
                    if not ids:
                        del index[value]


class Store:
    def __init__(self, state: SqliteState | None = None, *, wall: Callable[[], float] = time.time) -> None:
        self.state = state
        self.wall = wall
        self.tables = {t: Table(t, INDEXES.get(t, {})) for t in RESOURCE_TYPES}
        self.import_inputs: dict[str, list[Record]] = {}
        self._tokens: dict[str, float] = {}
        self._ids: set[str] = set()
        self._id_rng = random.Random()  # unseeded on purpose: created ids need not repeat across runs
        self._last_ms = 0

    # Loading -----------------------------------------------------------------------------------

    def load(self, items: Iterable[tuple[str, Record]], *, persist: bool) -> None:
        """Add records as they are (seed data, or a saved state)."""
        batch = []
        for type_, record in items:
            self.tables[type_].insert(record, keep_order=False)
            self._ids.add(record["id"])
            batch.append((type_, record))
        for table in self.tables.values():
            table.resort()
        if persist and self.state is not None:
            self.state.upsert_many(batch)

    def load_saved(self, state: SqliteState) -> None:
        self.load(state.load_records(), persist=False)
        self.import_inputs.update(state.load_inputs())
        self._tokens.update(state.load_tokens())

    # Records -----------------------------------------------------------------------------------

    def get(self, type_: str, id_: str) -> Record | None:
        return self.tables[type_].rows.get(id_)

    def new_id(self) -> str:
        while True:
            id_ = random_alnum(self._id_rng, 10)
            if id_ not in self._ids:
                self._ids.add(id_)
                return id_

    def now_iso(self) -> str:
        """Wall-clock ISO-8601 with milliseconds and Z, never earlier than the previous one."""
        ms = max(int(self.wall() * 1000), self._last_ms)
        self._last_ms = ms
        stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
        return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"

    def create(self, type_: str, attributes: dict[str, Any]) -> Record:
        now = self.now_iso()
        record: Record = {"id": self.new_id(), "created_at": now, "updated_at": now, **attributes}
        self.tables[type_].insert(record)
        if self.state is not None:
            self.state.upsert(type_, record)
        return record

    def update(self, type_: str, id_: str, changes: dict[str, Any], *, touch: bool = True) -> Record:
        record = {**self.tables[type_].rows[id_], **changes}
        if touch:
            record["updated_at"] = self.now_iso()
        self.tables[type_].replace(record)
        if self.state is not None:
            self.state.upsert(type_, record)
        return record

    def delete(self, type_: str, id_: str) -> None:
        if self.tables[type_].delete(id_) is not None and self.state is not None:
            self.state.delete(type_, id_)

    def save_inputs(self, id_: str, inputs: list[Record]) -> None:
        self.import_inputs[id_] = inputs
        if self.state is not None:
            self.state.save_inputs(id_, inputs)

    def reset(self) -> None:
        """Forget everything the API created; keep the seed data and the tokens."""
        for type_ in CREATED_TYPES:
            for id_ in self.tables[type_].rows:
                self._ids.discard(id_)
            self.tables[type_].clear()
        self.import_inputs.clear()
        if self.state is not None:
            self.state.delete_types(CREATED_TYPES)

    def duplicates(self) -> list[dict[str, Any]]:
        """(customer, payment source) pairs held by more than one customer_payment_source."""
        table = self.tables[CPS]
        out = []
        for key, ids in table.index_groups("pair").items():
            if len(ids) > 1:
                customer_id, _, source = str(key).partition("|")
                ordered = sorted(ids, key=lambda i: (table.rows[i]["created_at"], i))
                out.append({"customer_id": customer_id, "payment_source": source, "ids": ordered})
        return sorted(out, key=lambda d: (d["customer_id"], d["payment_source"]))

    # Tokens (only their SHA-256 is kept) ---------------------------------------------------------

    def issue_token(self, ttl_s: float, claims: Mapping[str, Any] | None = None) -> tuple[str, float]:
        """A JWT-shaped token (as Commerce Layer's are) carrying `claims` plus `iat`/`exp`; its
        signature part is random, which also makes every token unique. Nothing checks it: the
        sandbox knows its tokens by digest."""
        created = self.wall()
        token = jwt_shaped({**(claims or {}), "iat": int(created), "exp": int(created + ttl_s)})
        digest = _digest(token)
        self._tokens[digest] = created + ttl_s
        if self.state is not None:
            self.state.save_token(digest, created + ttl_s)
        return token, created

    def token_valid(self, token: str) -> bool:
        expires = self._tokens.get(_digest(token))
        return expires is not None and self.wall() < expires

    def expire_tokens(self) -> int:
        now = self.wall()
        live = [d for d, expires in self._tokens.items() if expires > now]
        for digest in live:
            self._tokens[digest] = now
        if self.state is not None:
            self.state.expire_tokens(now)
        return len(live)

    def close(self) -> None:
        if self.state is not None:
            self.state.close()
            self.state = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwt_shaped(payload: Mapping[str, Any]) -> str:
    header = {"alg": "RS512", "typ": "JWT"}
    parts = (json.dumps(header, separators=(",", ":")), json.dumps(payload, separators=(",", ":")))
    return ".".join([*(_b64url(p.encode("utf-8")) for p in parts), secrets.token_urlsafe(48)])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
