"""The pre-check's journal questions for a whole chunk at once (a CPU saving for big runs).

prepare.py asks the journal, row by row: "did an earlier row name this pairing?"
(`earlier_row_with_key`), "what does the journal know of this pairing?" (`pairing_state`), and,
for an e-mail row, records the key its e-mail resolved to (`set_resolved_key`) so later rows
see it. Three indexed SQLite queries or writes a row, each its own transaction: the largest CPU
cost of a 100,000-row import after reading the file (13.5 s of 23 s for a file half by e-mail).

`BatchedJournal` is the same journal (same connection). When prepare.py has resolved a chunk's
e-mails it calls `begin_chunk` with every row's key: two queries load the earlier rows with
those keys, one their pairing states, one the chunk's row locations. Resolved keys set during
the chunk go into that in-memory index at once (a later row of the same chunk must see them)
and to the journal in one transaction at `end_chunk`. A run killed before that has settled none
of the chunk's rows either (their outcomes are written after prepare.py returns), so the next
run checks the chunk again from the same journal state.
"""

from __future__ import annotations

from collections.abc import Sequence

from importer.journal import Journal, PairingState

_FIRST_ROWS = (
    "SELECT seq, source_file, sheet, row_number, pairing_key, resolved_key FROM rows WHERE run_id=?"
    " AND status NOT IN ('invalid', 'duplicate_in_file') AND ({column} IN ({marks}))"
)
Where = tuple[int, str, str, int]  # seq, file, sheet, row number


class BatchedJournal(Journal):
    def __init__(self, journal: Journal) -> None:
        super().__init__(journal.connection, journal.path)
        self._rows: dict[str, list[Where]] | None = None
        self._states: dict[str, PairingState] | None = None
        self._where: dict[int, tuple[str, str, int]] = {}
        self._resolved: list[tuple[str, str, int]] = []  # (key, run id, seq), not yet written

    def begin_chunk(self, run_id: str, target: str, keyed: Sequence[tuple[int, str]]) -> None:
        self.end_chunk()
        keys = sorted({key for _, key in keyed})
        if not keys:
            return
        marks = ",".join("?" * len(keys))
        rows: dict[str, list[Where]] = {}
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
        seqs = [seq for seq, _ in keyed]
        self._where = {
            seq: (source_file, sheet, row_number)
            for seq, source_file, sheet, row_number in self._conn.execute(
                "SELECT seq, source_file, sheet, row_number FROM rows WHERE run_id=?"
                f" AND seq IN ({','.join('?' * len(seqs))})",
                (run_id, *seqs),
            )
        }
        self._rows, self._states = rows, states

    def end_chunk(self) -> None:
        if self._resolved:
            with self._tx():
                self._conn.executemany(
                    "UPDATE rows SET resolved_key=? WHERE run_id=? AND seq=?", self._resolved
                )
        self._rows = self._states = None
        self._where, self._resolved = {}, []

    def earlier_row_with_key(
        self, run_id: str, pairing_key: str, before_seq: int
    ) -> tuple[str, str, int] | None:
        if self._rows is None:
            return super().earlier_row_with_key(run_id, pairing_key, before_seq)
        earlier = [hit for hit in self._rows.get(pairing_key, ()) if hit[0] < before_seq]
        first = min(earlier, default=None)
        return (first[1], first[2], first[3]) if first else None

    def set_resolved_key(self, run_id: str, seq: int, resolved_key: str) -> None:
        where = self._where.get(seq)
        if self._rows is None or where is None:
            super().set_resolved_key(run_id, seq, resolved_key)
            return
        self._resolved.append((resolved_key, run_id, seq))
        self._rows.setdefault(resolved_key, []).append((seq, *where))

    def pairing_state(self, target: str, pairing_key: str) -> PairingState | None:
        if self._states is None:
            return super().pairing_state(target, pairing_key)
        return self._states.get(pairing_key)
