"""The pre-check's journal questions for a whole chunk at once (a CPU saving for big runs).

prepare.py asks the journal two things per row: "did an earlier row name this pairing?"
(`earlier_row_with_key`) and "what does the journal know of this pairing?" (`pairing_state`):
three indexed SQLite queries a row, the largest CPU cost of a 100,000-row import after reading
the file. `BatchedJournal` is the same journal (same connection) answering both from two
queries per chunk, loaded by `preload` before the chunk is prepared.

Only chunks without e-mail rows are preloaded: an e-mail row writes its resolved key while the
chunk is prepared, which a later row of the same chunk must see, so such chunks ask row by row.
"""

from __future__ import annotations

from collections.abc import Sequence

from importer.journal import Journal, PairingState
from importer.models import Pairing

_FIRST_ROWS = (
    "SELECT seq, source_file, sheet, row_number, pairing_key, resolved_key FROM rows WHERE run_id=?"
    " AND status NOT IN ('invalid', 'duplicate_in_file') AND ({column} IN ({marks}))"
)


class BatchedJournal(Journal):
    def __init__(self, journal: Journal) -> None:
        super().__init__(journal.connection, journal.path)
        self._rows: dict[str, list[tuple[int, str, str, int]]] | None = None
        self._states: dict[str, PairingState] | None = None

    def preload(self, run_id: str, target: str, chunk: Sequence[tuple[int, Pairing]]) -> None:
        self._rows = self._states = None
        if any(not pairing.customer_id for _, pairing in chunk):
            return  # e-mail rows: row by row (see the module docstring)
        keys = sorted({pairing.key(pairing.customer_id) for _, pairing in chunk})
        if not keys:
            return
        marks = ",".join("?" * len(keys))
        rows: dict[str, list[tuple[int, str, str, int]]] = {}
        for column in ("pairing_key", "resolved_key"):
            query = _FIRST_ROWS.format(column=column, marks=marks)
            for seq, source_file, sheet, row_number, pairing_key, resolved_key in self._conn.execute(
                query, (run_id, *keys)
            ):
                key = pairing_key if column == "pairing_key" else resolved_key
                rows.setdefault(key, []).append((seq, source_file, sheet, row_number))
        states: dict[str, PairingState] = {}
        for key, *state in self._conn.execute(
            "SELECT pairing_key, state, customer_payment_source_id, customer_id, run_id FROM pairings"
            f" WHERE target=? AND pairing_key IN ({marks})",
            (target, *keys),
        ):
            states[key] = PairingState(*state)
        self._rows, self._states = rows, states

    def earlier_row_with_key(
        self, run_id: str, pairing_key: str, before_seq: int
    ) -> tuple[str, str, int] | None:
        if self._rows is None:
            return super().earlier_row_with_key(run_id, pairing_key, before_seq)
        earlier = [hit for hit in self._rows.get(pairing_key, ()) if hit[0] < before_seq]
        first = min(earlier, default=None)
        return (first[1], first[2], first[3]) if first else None

    def pairing_state(self, target: str, pairing_key: str) -> PairingState | None:
        if self._states is None:
            return super().pairing_state(target, pairing_key)
        return self._states.get(pairing_key)
