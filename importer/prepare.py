"""Settle what can be settled without a POST, one chunk of open rows at a time.

For a chunk (≈ `lookups.wallet_batch` rows, in input order):

1. resolve e-mails to customer ids, ≤ `email_batch` per request, each address asked for as
   written and in lower case and matched ignoring case (lookups.py). No customer → `failed`
   CUSTOMER_NOT_FOUND; customers whose e-mails differ only in case → `failed`
   CUSTOMER_AMBIGUOUS. A row with both `customer_id` and `customer_email` must name one
   customer: else `failed` CUSTOMER_MISMATCH, for either (also when the e-mail names nobody).
   None of these is sent;
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

import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

import structlog

from importer.clock import Clock
from importer.corrections import Correction, correction
from importer.journal import Journal, PairingState
from importer.lookups import WalletEntry, token_filter
from importer.models import Outcome, Pairing, RowStatus, row_where
from importer.stats import DispatchStats
from importer.wallets import LookupFailed, WalletReader

log = structlog.get_logger("importer")

EMAIL_CACHE_MAX = 10_000  # resolved e-mails kept across chunks (a bounded LRU: memory stays flat)


@dataclass(frozen=True, slots=True)
class Work:
    seq: int
    pairing: Pairing
    customer_id: str
    key: str
    checked_at: float = 0.0  # when the wallet look-up said "not there" (the dispatcher's clock)
    # `on_existing: update`: the existing entry and what its PATCH changes (None: a POST).
    update_id: str | None = None
    fix: Correction | None = None


@dataclass(slots=True)
class Prepared:
    settled: list[tuple[int, Outcome]] = field(default_factory=list)
    work: list[Work] = field(default_factory=list)


def _failed(customer_id: str | None, exc: LookupFailed, what: str) -> Outcome:
    return Outcome(
        RowStatus.FAILED,
        customer_id=customer_id,
        http_status=exc.http_status,
        error_code=exc.code,
        error_detail=f"{what} failed, nothing was sent: {exc.detail}",
    )


def _names(matches: tuple[tuple[str, str], ...]) -> str:
    return ", ".join(f"{customer_id} ({email})" for customer_id, email in matches)


def _rejected(code: str, detail: str) -> Outcome:
    return Outcome(RowStatus.FAILED, error_code=code, error_detail=detail)


def customer_for(customer_id: str | None, email: str, matches: tuple[tuple[str, str], ...]) -> str | Outcome:
    """Pure: the customer a row names, from the customers its e-mail matched (ignoring case).

    With an id too, the id must be among them: a row that names two different customers is
    never created for either. An e-mail that matches nobody next to an id fails as well (the
    two cannot be the same customer, and which cell is wrong only the person can tell)."""
    ids = [m[0] for m in matches]
    if customer_id is not None:
        if customer_id in ids:
            return customer_id
        if not matches:
            return _rejected(
                "CUSTOMER_MISMATCH",
                f"customer_id {customer_id} and customer_email {email} do not name the same customer: "
                f"no customer has the e-mail {email} in this organization; nothing was created; "
                f"correct the e-mail, or empty customer_email to import for customer {customer_id}",
            )
        return _rejected(
            "CUSTOMER_MISMATCH",
            f"customer_id {customer_id} and customer_email {email} name different customers: the e-mail "
            f"is customer {_names(matches)}; nothing was created for either; correct one of the two cells",
        )
    if not matches:
        return _rejected(
            "CUSTOMER_NOT_FOUND",
            f"no customer with e-mail {email} in this organization (looked up as written and in "
            "lower case); create the customer first, or correct the e-mail; if the customer's "
            "record has capitals in its e-mail, write it exactly so: the API may match e-mails "
            "case-sensitively",
        )
    if len(matches) > 1:
        return _rejected(
            "CUSTOMER_AMBIGUOUS",
            f"e-mail {email} matches {len(matches)} customers whose e-mails differ only in case: "
            f"{_names(matches)}; nothing was sent; give the customer_id column instead of the e-mail",
        )
    return ids[0]


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
        clock: Clock = time.monotonic,
        on_existing: str = "skip",
        recreate_undone: bool = False,
    ) -> None:
        self._journal = journal
        self._clock = clock
        self._run_id = run_id
        self._target = target
        self._reader = reader
        self._stats = stats
        self._dry_run = dry_run
        # Spellings already looked up (as written), and, per lower-cased address, every customer
        # (id → stored e-mail) any look-up found for it under any spelling. Both bounded LRUs.
        self._update = on_existing == "update"
        self._recreate_undone = recreate_undone
        self._spellings: OrderedDict[str, None] = OrderedDict()
        self._known: OrderedDict[str, dict[str, str]] = OrderedDict()

    async def _resolve_emails(self, rows: list[tuple[int, Pairing]]) -> LookupFailed | None:
        wanted = sorted(
            {p.customer_email for _, p in rows if p.customer_email and not self._asked(p.customer_email)}
        )
        if not wanted:
            return None
        try:
            found = await self._reader.customers(wanted)
        except LookupFailed as exc:
            return exc
        for email in wanted:
            # Customers found before under another spelling of this address count too: on a
            # case-sensitive server only some spellings reach a customer, and a row must not
            # miss one (or an ambiguity) just because its own spelling cannot.
            known = self._known.pop(email.lower(), {})
            known.update(found.get(email, ()))
            self._known[email.lower()] = known
            self._spellings[email] = None
            for cache in (self._spellings, self._known):
                while len(cache) > EMAIL_CACHE_MAX:
                    cache.popitem(last=False)
        return None

    def _asked(self, email: str) -> bool:
        """This spelling was looked up, and what was found for its address is still cached."""
        return email in self._spellings and email.lower() in self._known

    def _customer(self, pairing: Pairing, email_error: LookupFailed | None) -> str | Outcome:
        """The row's customer id, or the outcome that fails the row without a request."""
        email = pairing.customer_email
        if not email:
            assert pairing.customer_id is not None  # validation: one of the two is there
            return pairing.customer_id
        if not self._asked(email) and email_error is not None:
            return _failed(None, email_error, "the customer look-up by e-mail")
        matches = tuple(sorted(self._known.get(email.lower(), {}).items()))
        return customer_for(pairing.customer_id, email, matches)

    def _first_row(self, seq: int, key: str, by_email: bool) -> str | None:
        """Where an earlier row of this run named the same resolved pairing, if one did.

        Id rows that repeat each other were caught at intake; what is left are collisions that
        only show once e-mails are resolved. Both sides live in the journal (an e-mail row's
        resolved key is written when it is checked), so memory stays flat and a resumed run
        sees them too."""
        hit = self._journal.earlier_row_with_key(self._run_id, key, seq)
        if hit is not None:
            return row_where(*hit)
        if by_email:
            self._journal.set_resolved_key(self._run_id, seq, key)
        return None

    def _settled_by_journal(self, state: PairingState | None, customer_id: str) -> Outcome | None:
        if state is not None and state.state == "undone":
            if self._recreate_undone:
                self._stats.recreated_after_undo += 1
                log.info("row.recreating_undone", customer_id=customer_id, undo_run_id=state.run_id)
                return None  # checked in the wallet, then created again
            return Outcome(
                RowStatus.SKIPPED,
                customer_id=customer_id,
                error_code="UNDONE",
                error_detail=f"`importer undo` (run {state.run_id}) deleted this pairing's entry; "
                "not created again: pass --recreate-undone to create it",
            )
        if self._update and state is not None and state.run_id != self._run_id:
            return None  # the entry's values must be read to compare them with the row
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
        customers = [(seq, pairing, self._customer(pairing, email_error)) for seq, pairing in rows]
        keyed = [(seq, p.key(c)) for seq, p, c in customers if not isinstance(c, Outcome)]
        self._journal.begin_chunk(self._run_id, self._target, keyed)
        try:
            await self._prepare(customers, out)
        finally:
            self._journal.end_chunk()
        out.settled.sort(key=lambda item: item[0])
        return out

    async def _prepare(self, customers: list[tuple[int, Pairing, str | Outcome]], out: Prepared) -> None:
        pending: list[tuple[Work, PairingState | None]] = []
        for seq, pairing, customer_id in customers:
            if isinstance(customer_id, Outcome):
                out.settled.append((seq, customer_id))
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

    async def _check_wallets(self, pending: list[tuple[Work, PairingState | None]], out: Prepared) -> None:
        customers = sorted({work.customer_id for work, _ in pending})
        tokens = token_filter(
            None if work.pairing.payment_source_id else work.pairing.payment_source_token
            for work, _ in pending
        )
        try:
            entries: dict[str, WalletEntry] = {}
            if self._update:  # the values to compare come with the entries
                entries = await self._reader.read_entries(customers, tokens, values=True)
                index = {key: entry.id for key, entry in entries.items()}
            else:  # `read`, which a reader may serve another way (the imports pre-check's snapshot)
                index = await self._reader.read(customers, tokens)
        except LookupFailed as exc:
            for work, _ in pending:
                out.settled.append(
                    (work.seq, _failed(work.customer_id, exc, "reading the existing wallet entries"))
                )
            return
        checked_at = self._clock()
        for work, state in pending:
            found = index.get(work.key)
            if found is None:
                out.work.append(replace(work, checked_at=checked_at))
                continue
            if state is not None and state.state == "undone":
                log.info("row.recreate_undone_exists", row_seq=work.seq, customer_payment_source_id=found)
            status = RowStatus.ALREADY_EXISTS
            if state is not None and state.state == "sending":
                # A POST of an earlier attempt had an unknown outcome (a crash mid-request): it
                # did land. It is ours to call `created` if it was this very run.
                self._stats.ambiguous_outcomes += 1
                if state.run_id == self._run_id:
                    status = RowStatus.CREATED
            outcome = Outcome(status, found, work.customer_id)
            # A pairing the journal already knows by its entry (read again only to compare its
            # values, `on_existing: update`) keeps the run that created it.
            known = state is not None and state.state in ("created", "already_exists")
            if not self._dry_run and not (known and state is not None and state.customer_payment_source_id):
                self._journal.mark_pairing(self._target, work.key, self._run_id, outcome)
            entry = entries.get(work.key)
            fix = (
                correction(work.pairing, entry)
                if entry is not None and status is RowStatus.ALREADY_EXISTS
                else None
            )
            if fix is None:
                out.settled.append((work.seq, outcome))
            elif self._dry_run:
                out.settled.append(
                    (
                        work.seq,
                        Outcome(RowStatus.WOULD_UPDATE, found, work.customer_id, changed_fields=fix.label),
                    )
                )
            else:
                out.work.append(
                    Work(work.seq, work.pairing, work.customer_id, work.key, update_id=found, fix=fix)
                )
