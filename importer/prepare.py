"""Settle what can be settled without a POST, one chunk of open rows at a time.

For a chunk (≈ `lookups.wallet_batch` rows, in input order):

1. resolve e-mails to customer ids, ≤ `email_batch` per request (unknown → `failed`
   CUSTOMER_NOT_FOUND, no POST);
2. duplicates by resolved key: an e-mail row and an id row that name the same customer and
   source → the later one is `duplicate_in_file` naming the first (intake only saw the keys as
   written, before e-mails were resolved);
3. the journal: a pairing already created/already_exists for this API needs nothing;
4. one wallet look-up for the chunk's customers: entries that exist → `already_exists` (or
   `created`, when this run created them before a crash: the journal said `sending`).

What is left is `Work`: rows that need a POST. On a first run that costs ≤ 4 + 1 requests per
100 rows (one per 20 rows).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from importer.journal import Journal, PairingState
from importer.models import Outcome, Pairing, RowStatus
from importer.stats import DispatchStats
from importer.wallets import LookupFailed, WalletReader

EMAIL_CACHE_MAX = 10_000  # resolved e-mails kept across chunks (a bounded LRU: memory stays flat)


@dataclass(frozen=True, slots=True)
class Work:
    seq: int
    pairing: Pairing
    customer_id: str
    key: str


@dataclass(slots=True)
class Prepared:
    settled: list[tuple[int, Outcome]] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)


def where(location: tuple[str, str, int]) -> str:
    """A row as intake names it in `duplicate_in_file` details: `file [sheet] row n`."""
    source_file, sheet, row_number = location
    return f"{source_file}{f' [{sheet}]' if sheet else ''} row {row_number}"


def _failed(customer_id: str | None, exc: LookupFailed, what: str) -> Outcome:
    return Outcome(
        RowStatus.FAILED,
        customer_id=customer_id,
        http_status=exc.http_status,
        error_code=exc.code,
        error_detail=f"{what} failed, nothing was sent: {exc.detail}",
    )


class ChunkPreparer:
    def __init__(
        self,
        journal: Journal,
        run_id: str,
        target: str,
        reader: WalletReader,
        stats: DispatchStats,
        *,
        dry_run: bool,
    ) -> None:
        self._journal = journal
        self._run_id = run_id
        self._target = target
        self._reader = reader
        self._stats = stats
        self._dry_run = dry_run
        self._emails: OrderedDict[str, str | None] = OrderedDict()

    async def _resolve_emails(self, rows: list[tuple[int, Pairing]]) -> LookupFailed | None:
        wanted = sorted(
            {(p.customer_email or "").lower() for _, p in rows if not p.customer_id} - set(self._emails)
        )
        if not wanted:
            return None
        try:
            found = await self._reader.customers(wanted)
        except LookupFailed as exc:
            return exc
        for email in wanted:
            self._emails[email] = found.get(email)
            while len(self._emails) > EMAIL_CACHE_MAX:
                self._emails.popitem(last=False)
        return None

    def _first_row(self, seq: int, key: str, by_email: bool) -> str | None:
        """Where an earlier row of this run named the same resolved pairing, if one did.

        Id rows that repeat each other were caught at intake; what is left are collisions that
        only show once e-mails are resolved. Both sides live in the journal (an e-mail row's
        resolved key is written when it is checked), so memory stays flat and a resumed run
        sees them too."""
        hit = self._journal.earlier_row_with_key(self._run_id, key, seq)
        if hit is not None:
            return where(hit)
        if by_email:
            self._journal.set_resolved_key(self._run_id, seq, key)
        return None

    def _settled_by_journal(self, state: PairingState | None, customer_id: str) -> Outcome | None:
        if (
            state is None
            or state.state not in ("created", "already_exists")
            or not state.customer_payment_source_id
        ):
            return None
        status = RowStatus.CREATED if state.run_id == self._run_id else RowStatus.ALREADY_EXISTS
        return Outcome(status, state.customer_payment_source_id, customer_id)

    async def prepare(self, rows: list[tuple[int, Pairing]]) -> Prepared:
        out = Prepared()
        email_error = await self._resolve_emails(rows)
        pending: list[tuple[Work, PairingState | None]] = []
        for seq, pairing in rows:
            customer_id = pairing.customer_id
            if not customer_id:
                email = (pairing.customer_email or "").lower()
                if email not in self._emails and email_error is not None:
                    out.settled.append((seq, _failed(None, email_error, "the customer look-up by e-mail")))
                    continue
                customer_id = self._emails.get(email)
                if customer_id is None:
                    out.settled.append(
                        (
                            seq,
                            Outcome(
                                RowStatus.FAILED,
                                error_code="CUSTOMER_NOT_FOUND",
                                error_detail=f"no customer with e-mail {email} in this organization; "
                                "create the customer first or correct the e-mail",
                            ),
                        )
                    )
                    continue
            key = pairing.key(customer_id)
            first = self._first_row(seq, key, by_email=not pairing.customer_id)
            if first is not None:
                out.settled.append(
                    (
                        seq,
                        Outcome(
                            RowStatus.DUPLICATE_IN_FILE,
                            customer_id=customer_id,
                            error_code="DUPLICATE_IN_FILE",
                            # Intake saw two different spellings of the customer; say why
                            # `validate` could not have found this one.
                            error_detail=f"same customer as {first} once the e-mail was resolved, "
                            "and the same payment source",
                        ),
                    )
                )
                continue
            state = self._journal.pairing_state(self._target, key)
            known = self._settled_by_journal(state, customer_id)
            if known is not None:
                out.settled.append((seq, known))
                continue
            pending.append((Work(seq, pairing, customer_id, key), state))
        if pending:
            await self._check_wallets(pending, out)
        out.settled.sort(key=lambda item: item[0])
        return out

    async def _check_wallets(self, pending: list[tuple[Work, PairingState | None]], out: Prepared) -> None:
        customers = sorted({work.customer_id for work, _ in pending})
        try:
            index = await self._reader.read(customers)
        except LookupFailed as exc:
            for work, _ in pending:
                out.settled.append(
                    (work.seq, _failed(work.customer_id, exc, "reading the existing wallet entries"))
                )
            return
        for work, state in pending:
            found = index.get(work.key)
            if found is None:
                out.work.append(work)
                continue
            status = RowStatus.ALREADY_EXISTS
            if state is not None and state.state == "sending":
                # A POST of an earlier attempt had an unknown outcome (a crash mid-request): it
                # did land. It is ours to call `created` if it was this very run.
                self._stats.ambiguous_outcomes += 1
                if state.run_id == self._run_id:
                    status = RowStatus.CREATED
            outcome = Outcome(status, found, work.customer_id)
            if not self._dry_run:
                self._journal.mark_pairing(self._target, work.key, self._run_id, outcome)
            out.settled.append((work.seq, outcome))
