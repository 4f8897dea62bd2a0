"""The POST of one row: the exactly-once protocol of docs/exactly-once.md, steps 3–5.

`sending` is committed before the request leaves. An answer that leaves the outcome unknown (a
5xx, a timeout, a dropped connection) is followed by a wallet look-up before anything is sent
again; only a look-up that finds nothing allows a retry. That rule lives in one place,
`Creator._lost_answer`: the client (client.py) hands such an answer back instead of resending it
(`retry_ambiguous=False`), and every pause before a resend is `retry.Retrier`'s.

A 409 ("Record not unique") is handled like a lost answer: the record may exist, so the pairing
is looked up. Found → `already_exists` with its id. Not found → `failed` with the API's code and
a detail saying the clash is with a record the look-up cannot see (nothing is resent: it would
clash again). A failed look-up leaves the pairing `sending` (OUTCOME_UNKNOWN), as for a 5xx.
A 422 about a relationship names the type and id that were sent (rejections.py).
"""

from __future__ import annotations

from dataclasses import replace

from importer.client import Answer, ApiClient
from importer.context import DispatchContext
from importer.models import Outcome, RowStatus
from importer.planner import create_request
from importer.prepare import Work
from importer.rejections import relationship_detail
from importer.retry import Backoff, Retrier
from importer.stats import DispatchStats
from importer.wallets import LookupFailed, Rechecker
from importer.wire import ApiRequest, Ok, Retriable, RowRejected


def _created(work: Work, answer: Answer, sent: int) -> Outcome:
    """A 201: the row is `created` with the id the API gave the record."""
    body = answer.response.body if answer.response is not None else None
    data = body.get("data") if isinstance(body, dict) else None
    cps_id = data.get("id") if isinstance(data, dict) else None
    status = answer.response.status if answer.response is not None else None
    return Outcome(
        RowStatus.CREATED,
        cps_id if isinstance(cps_id, str) else None,
        work.customer_id,
        status,
        attempts=sent,
    )


def _failed(work: Work, http_status: int | None, code: str | None, detail: str, attempts: int) -> Outcome:
    return Outcome(RowStatus.FAILED, None, work.customer_id, http_status, code, detail, attempts)


class Creator:
    def __init__(
        self,
        ctx: DispatchContext[DispatchStats],
        client: ApiClient,
        rechecker: Rechecker,
        backoff: Backoff,
        *,
        check_before_post: bool = False,
    ) -> None:
        self._check_before_post = check_before_post
        self._clock = ctx.clock  # to measure look-up → POST answer (the two-host duplicate window)
        self._journal = ctx.journal
        self._target = ctx.target
        self._run_id = ctx.run_id
        self._client = client
        self._rechecker = rechecker
        self._retrier = Retrier(backoff, ctx.sleep, ctx.stats)
        self._stats = ctx.stats

    def _final(self, work: Work, outcome: Outcome) -> Outcome:
        self._journal.mark_pairing(self._target, work.key, self._run_id, outcome)
        return outcome

    async def create(self, work: Work) -> Outcome:
        request = create_request(work.pairing, work.customer_id)
        if self._check_before_post:
            checked = await self._check(work, request)
            if isinstance(checked, Outcome):
                return checked
            work = checked
        self._journal.mark_sending(self._target, work.key, self._run_id, work.customer_id)
        attempts = self._client.attempts()
        measured = False
        while True:
            answer = await self._client.request(request, attempts, retry_ambiguous=False)
            if not measured and work.checked_at:
                measured = True  # the first POST only: a resend follows a fresh look-up
                self._stats.note_check_to_post(self._clock() - work.checked_at)
            verdict = answer.verdict
            if isinstance(verdict, Ok):
                return self._final(work, _created(work, answer, attempts.sent))
            if isinstance(verdict, RowRejected):
                return await self._rejected(work, request, answer, verdict, attempts.sent)
            assert isinstance(verdict, Retriable)
            if verdict.ambiguous:
                landed = await self._lost_answer(work, verdict, attempts.sent)
                if landed is not None:
                    return landed
            if not attempts.may_retry():
                detail = f"{verdict.detail} (gave up after {attempts.sent} attempts)"
                return self._final(
                    work, _failed(work, verdict.http_status, verdict.code, detail, attempts.sent)
                )
            await self._retrier.pause(attempts.counted)

    async def _rejected(
        self, work: Work, request: ApiRequest, answer: Answer, verdict: RowRejected, sent: int
    ) -> Outcome:
        """A 4xx (or a redirect): a 409 is looked up; anything else fails the row, unretried."""
        if verdict.http_status == 409:
            return await self._conflict(work, verdict, sent)
        detail = verdict.detail
        if verdict.http_status == 422 and request.body is not None:
            body = answer.response.body if answer.response is not None else None
            detail = relationship_detail(detail, body, request.body, work.pairing)
        return self._final(work, _failed(work, verdict.http_status, verdict.code, detail, sent))

    async def _lost_answer(self, work: Work, verdict: Retriable, sent: int) -> Outcome | None:
        """The exactly-once rule: a POST whose answer was lost (5xx, timeout, drop) may have
        created the record, so the wallet is read before anything is sent again. Found: the row
        is `created` with that id. Not found: None, and the caller may resend."""
        try:
            found = await self._rechecker.find(work.customer_id, work.key)
        except LookupFailed as exc:
            # Unknown and uncheckable: the pairing stays `sending`, so the next run
            # looks it up before it sends anything.
            detail = (
                f"{verdict.detail}; the record may exist and the look-up to check it failed "
                f"({exc.code}: {exc.detail}); the next run checks again before sending"
            )
            return _failed(work, verdict.http_status, "OUTCOME_UNKNOWN", detail, sent)
        if found is None:
            return None
        self._stats.ambiguous_outcomes += 1
        return self._final(work, Outcome(RowStatus.CREATED, found, work.customer_id, attempts=sent))

    async def _check(self, work: Work, request: ApiRequest) -> Work | Outcome:
        """`lookups.check_before_post`: is the pairing there now (another host made it)?

        The check waits until the POST would fit the rate windows, so the POST does not then
        sit behind a full window with a stale check."""
        await self._client.ready(request)
        try:
            found = await self._rechecker.find(work.customer_id, work.key)
        except LookupFailed as exc:
            detail = f"the wallet check right before the POST failed, nothing was sent: {exc.detail}"
            return _failed(work, exc.http_status, exc.code, detail, 0)
        if found is not None:
            return self._final(work, Outcome(RowStatus.ALREADY_EXISTS, found, work.customer_id))
        return replace(work, checked_at=self._clock())

    async def _conflict(self, work: Work, verdict: RowRejected, sent: int) -> Outcome:
        """A 409 on the POST: the record may exist; look it up, like a lost answer."""
        try:
            found = await self._rechecker.find(work.customer_id, work.key)
        except LookupFailed as exc:
            detail = (
                f"{verdict.detail}; the API says the record is not unique and the look-up to find it "
                f"failed ({exc.code}: {exc.detail}); the next run checks again before sending"
            )
            return _failed(work, verdict.http_status, "OUTCOME_UNKNOWN", detail, sent)
        if found is not None:
            self._stats.ambiguous_outcomes += 1
            return self._final(
                work, Outcome(RowStatus.ALREADY_EXISTS, found, work.customer_id, 409, attempts=sent)
            )
        detail = (
            f"{verdict.detail}; the API says the record is not unique, but the customer's wallet has no "
            "entry for this pairing: the clash is with a record the look-up cannot see (another "
            "customer's entry for this payment source, or one outside the token's scope); nothing "
            "was created and nothing is resent"
        )
        return self._final(work, _failed(work, verdict.http_status, verdict.code, detail, sent))
