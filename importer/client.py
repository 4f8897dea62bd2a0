"""`ApiClient.request`: one API call with everything around it (slot, token, pacing, retries).

Order matters and is the reason this module exists:

1. a connection slot (one of `concurrency`): taken *before* the rate stamp, so a stamped request
   never queues for a pooled connection and reaches the server within the safety margin;
2. the access token;
3. `Pacer.admit`: the 429 gate and the rate windows, which stamp the request at send time;
4. the send, then `classify`.

What counts against `retry.max_attempts` (every send counts in `Attempts.sent`, the row's
`attempts` column): 5xx, 408, timeouts and connection errors do. A 429 does not: it is flow
control, the server did not process the request, and the shared gate bounds how many go out
(a run that sees `MAX_CONSECUTIVE_PAUSES` pauses in a row with no request getting through is
aborted). A resend after 401 INVALID_TOKEN does not either, but only one per request: a fresh
token that is refused again is fatal.

A 401 that is not INVALID_TOKEN (`UNAUTHORIZED`, "Access denied") says this token may not touch
this resource, for example a customer outside its market scope. It gets one token renewal (a
token issued before a change of the integration's role may be stale); still denied, the row
fails and the run goes on. One renewal per token: a denial answered to a token that was itself
fetched after a denial fails at once, so scattered denied rows cost no token requests. The run
is aborted only when the denials are systemic: `retry.max_denied_in_a_row` of them with no
request accepted between them (every request of a chunk, say), or the token endpoint refusing
the renewal (AuthFailed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from importer.auth import TokenProvider
from importer.clock import Clock, Sleep
from importer.pacing import Pacer, Permit
from importer.retry import Backoff, Retrier
from importer.stats import DispatchStats
from importer.wire import (
    ApiRequest,
    ApiResponse,
    Denied,
    Fatal,
    Ok,
    Reauth,
    Retriable,
    RowRejected,
    Sender,
    TransportFailure,
    Verdict,
    classify,
    classify_failure,
)

MAX_CONSECUTIVE_PAUSES = 30
DENIED_HINT = (
    "the access token may not touch this resource (401 without INVALID_TOKEN, still refused after a "
    "token renewal): check the token's scope (commercelayer.scope; a market scope hides customers and "
    "payment methods of other markets) and the integration's role and market permissions"
)
log = structlog.get_logger("importer")


class Abort(Exception):
    """The run cannot go on (the dispatcher turns it into RunAborted with the stats)."""


@dataclass(slots=True)
class Attempts:
    """Sends of one logical request (a row's POST, or one look-up page)."""

    max_attempts: int
    sent: int = 0  # every send, reported as the row's `attempts`
    counted: int = 0  # the sends that count against max_attempts
    rate_limited: int = 0

    def may_retry(self) -> bool:
        return self.counted < self.max_attempts


@dataclass(frozen=True, slots=True)
class Answer:
    verdict: Verdict
    response: ApiResponse | None


class ApiClient:
    def __init__(
        self,
        sender: Sender,
        tokens: TokenProvider,
        pacer: Pacer,
        backoff: Backoff,
        stats: DispatchStats,
        *,
        slots: int,
        pause_s: float,
        sleep: Sleep,
        max_denied_in_a_row: int = 10,
        wall: Clock = time.time,
        on_send: Callable[[str], None] | None = None,
    ) -> None:
        self._sender = sender
        self._tokens = tokens
        self._pacer = pacer
        self._retrier = Retrier(backoff, sleep, stats)
        self._stats = stats
        self._slots = asyncio.Semaphore(slots)
        self._pause_s = pause_s  # a 429 without Retry-After pauses for one burst window
        self._wall = wall  # only to read a Retry-After HTTP-date that comes without a Date header
        self._max_denied = max_denied_in_a_row
        self._denied_in_a_row = 0
        self._token_after_denial: str | None = None  # the token a denial made us fetch
        self._on_send = on_send  # every /api send, for the journal's send stamps
        self._reconciled = False  # the first answer's X-Ratelimit-* numbers were checked

    async def ready(self, request: ApiRequest) -> None:
        """Wait until `request` would fit the rate windows now (nothing is stamped or sent)."""
        await self._pacer.ready(request.endpoint)

    def attempts(self) -> Attempts:
        return Attempts(self._retrier.backoff.max_attempts)

    async def request(self, request: ApiRequest, attempts: Attempts, *, retry_ambiguous: bool) -> Answer:
        """Send until an answer is final. Returns Ok, RowRejected, or a Retriable when attempts
        ran out or (with `retry_ambiguous` False) when a resend could duplicate a POST.
        A resource-level 401 comes back as a RowRejected (after one token renewal).
        Raises Abort on a Fatal answer, systemic 401s or an endless 429 storm."""
        reauthed = denied_renewed = False
        while True:
            answer, token = await self._send_once(request, attempts)
            verdict = answer.verdict
            # Method, path and outcome only: never headers, query values (e-mails) or bodies.
            log.debug(
                "api.answer",
                endpoint=request.endpoint,
                attempt=attempts.sent,
                http_status=answer.response.status if answer.response else None,
                verdict=type(verdict).__name__,
                reason=getattr(verdict, "reason", None),
            )
            if isinstance(verdict, Reauth):
                if reauthed:
                    raise Abort(
                        "the API refused a freshly issued access token (401 INVALID_TOKEN twice in a row); "
                        "check commercelayer.base_url and auth_url belong to the same organization"
                    )
                reauthed = True
                await self._tokens.renew(token)
                continue
            reauthed = False
            if isinstance(verdict, Denied):
                if token != self._token_after_denial and not denied_renewed:
                    denied_renewed = True
                    self._token_after_denial = await self._tokens.renew(token)
                    continue
                return self._denied(verdict, answer)
            if isinstance(verdict, Fatal):
                raise Abort(
                    f"the API refused access ({verdict.http_status} {verdict.code}: {verdict.detail}); "
                    "check the integration's role and commercelayer.scope"
                )
            if isinstance(verdict, Ok | RowRejected):
                self._denied_in_a_row = 0  # the API accepted something: the denials are not systemic
                return answer
            if verdict.reason == "rate_limited":
                if self._pacer.gate.consecutive >= MAX_CONSECUTIVE_PAUSES:
                    raise Abort(
                        f"the API answered 429 through {MAX_CONSECUTIVE_PAUSES} pauses in a row; another "
                        "client may be using this IP's rate budget; try again later"
                    )
                attempts.rate_limited += 1
                # Jitter on top of the gate: waiters leave it one by one, not as a herd.
                await self._retrier.pause(attempts.rate_limited)
                continue
            if (verdict.ambiguous and not retry_ambiguous) or not attempts.may_retry():
                return answer
            await self._retrier.pause(attempts.counted)

    def _denied(self, verdict: Denied, answer: Answer) -> Answer:
        """A resource-level 401 that survived its renewal: the row fails, unless they are systemic."""
        self._denied_in_a_row += 1
        if self._denied_in_a_row >= self._max_denied:
            raise Abort(
                f"the API refused access {self._denied_in_a_row} times in a row with no request accepted "
                f"between them ({verdict.http_status} {verdict.code}: {verdict.detail}); {DENIED_HINT}"
            )
        detail = f"{verdict.detail}; {DENIED_HINT}"
        return Answer(RowRejected(verdict.http_status, verdict.code, detail), answer.response)

    async def _send_once(self, request: ApiRequest, attempts: Attempts) -> tuple[Answer, str]:
        gate = self._pacer.gate
        async with self._slots:
            token = await self._tokens.get()
            permit = await self._pacer.admit(request.endpoint)
            if self._on_send is not None:
                self._on_send(request.endpoint)
            self._stats.requests += 1
            if request.method == "GET":
                self._stats.lookup_requests += 1
            elif request.method == "DELETE":
                self._stats.deletes += 1
            elif request.method == "PATCH":
                self._stats.patches += 1
            else:
                self._stats.posts += 1
            attempts.sent += 1
            try:
                response = await self._sender.send(request, token)
            except TransportFailure as failure:
                gate.probe_done(permit.probe, rate_limited=False)
                attempts.counted += 1
                return Answer(classify_failure(failure), None), token
            except BaseException:
                gate.give_back(permit.probe)
                raise
        verdict = classify(response.status, response.headers, response.body, now=self._wall())
        if isinstance(verdict, Retriable) and verdict.reason == "rate_limited":
            self._stats.rate_limited += 1
            gate.close(verdict.retry_after_s if verdict.retry_after_s is not None else self._pause_s)
            gate.probe_done(permit.probe, rate_limited=True)
        else:
            gate.probe_done(permit.probe, rate_limited=False)
            if not isinstance(verdict, Reauth):
                attempts.counted += 1
        self._note_remaining(response, permit)
        return Answer(verdict, response), token

    def _note_remaining(self, response: ApiResponse, permit: Permit) -> None:
        limit = _number(response.headers.get("x-ratelimit-limit"))
        remaining = _number(response.headers.get("x-ratelimit-remaining"))
        if not self._reconciled and limit is not None and remaining is not None and response.status != 429:
            self._reconciled = True
            foreign = self._pacer.server_holds(limit, remaining, permit.average_held)
            if foreign:
                log.info("rate.foreign_requests", requests=foreign, source="x-ratelimit-remaining")
        if response.headers.get("x-ratelimit-remaining", "").strip() != "0":
            return
        self._pacer.server_says_empty(
            _number(response.headers.get("x-ratelimit-interval")),
            _number(response.headers.get("x-ratelimit-limit")),
        )


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None
