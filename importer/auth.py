"""Access tokens: OAuth2 client_credentials, cached, renewed once however many workers ask.

The token lives only in `TokenProvider` and in the Authorization header the sender builds; it is
never logged, put in an exception, the stats or the journal (`AccessToken` hides it in repr).

Renewal is single-flight: a worker that got 401 INVALID_TOKEN calls `renew(used)` with the token
it sent. Under one lock, the first caller finds `used` is still current and fetches a new token;
everyone after it finds a different token already there and takes it. However many workers hit
the 401 together, one token request goes out.

The token endpoint allows 30 requests a minute. Token requests go through an asyncio-throttle
`Throttler` well under that (one window, stamped just before the request leaves, which is what
that library does and all this needs).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from asyncio_throttle.throttler import Throttler

from importer.clock import Clock, Sleep
from importer.config import Settings
from importer.retry import Backoff, Retrier
from importer.stats import DispatchStats
from importer.wire import ApiResponse, Sender, TransportFailure, error_parts, retry_after

# Token requests per minute we allow ourselves: two thirds of the endpoint's 30, so a second
# process on the same IP (a retried cron job) still fits.
TOKEN_REQUESTS_PER_MIN = 20
INVALID_CLIENT = (
    "authentication failed: the API rejected commercelayer.client_id/client_secret (invalid_client); "
    "check CL_CLIENT_ID and CL_CLIENT_SECRET for this environment"
)


class AuthFailed(Exception):
    """No token can be had; the message says why and what to fix (never the secret)."""


@dataclass(frozen=True, slots=True)
class AccessToken:
    value: str = field(repr=False)
    renew_at: float  # on the provider's monotonic clock

    def __repr__(self) -> str:
        return f"AccessToken(***, renew_at={self.renew_at:.1f})"


def token_request_body(settings: Settings) -> dict[str, str]:
    cl = settings.commercelayer
    body = {"grant_type": "client_credentials", "client_id": cl.client_id or ""}
    if cl.client_secret is not None:
        body["client_secret"] = cl.client_secret.get_secret_value()
    if cl.scope:
        body["scope"] = cl.scope
    return body


def parse_token(response: ApiResponse, fetched_at: float, margin_s: float) -> AccessToken:
    """The token and when to renew it. `fetched_at` is the monotonic time just before the request,
    so the clock skew between us and the server cannot make us trust an expired token.
    The margin is capped at half the lifetime: a short-lived token is still used."""
    body = response.body if isinstance(response.body, dict) else {}
    value = body.get("access_token")
    if not isinstance(value, str) or not value:
        raise AuthFailed(
            "authentication failed: the token endpoint's answer has no access_token; "
            "check commercelayer.auth_url"
        )
    expires_in = body.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else 7200.0
    return AccessToken(value, fetched_at + lifetime - min(margin_s, lifetime / 2))


def auth_error_message(response: ApiResponse) -> str:
    code, detail = error_parts(response.body, response.status)
    titles = ""
    if isinstance(response.body, dict) and isinstance(response.body.get("errors"), list):
        titles = " ".join(str(e.get("title", "")) for e in response.body["errors"] if isinstance(e, dict))
    if response.status in (400, 401) and (
        "invalid_client" in titles or "invalid_client" in str(response.body)
    ):
        return INVALID_CLIENT
    return (
        f"authentication failed: the token endpoint answered {response.status} {code} ({detail}); "
        "check commercelayer.auth_url, client_id, client_secret and scope"
    )


class TokenProvider:
    def __init__(
        self,
        sender: Sender,
        settings: Settings,
        stats: DispatchStats,
        *,
        clock: Clock,
        sleep: Sleep,
        backoff: Backoff,
        throttler: Any = None,
    ) -> None:
        self._sender = sender
        self._settings = settings
        self._stats = stats
        self._clock = clock
        self._retrier = Retrier(backoff, sleep, stats)
        self._throttler = throttler or Throttler(rate_limit=TOKEN_REQUESTS_PER_MIN, period=60.0)
        self._lock = asyncio.Lock()
        self._token: AccessToken | None = None

    def _fresh(self) -> AccessToken | None:
        token = self._token
        return token if token is not None and self._clock() < token.renew_at else None

    async def get(self) -> str:
        token = self._fresh()
        if token is not None:
            return token.value
        async with self._lock:
            token = self._fresh() or await self._fetch()
            return token.value

    async def renew(self, used: str) -> str:
        """The API said INVALID_TOKEN to `used`: fetch a new token unless someone already did."""
        async with self._lock:
            current = self._token
            if current is not None and current.value != used and self._clock() < current.renew_at:
                return current.value
            self._token = None
            return (await self._fetch()).value

    async def _fetch(self) -> AccessToken:
        url = self._settings.commercelayer.auth_url
        body = token_request_body(self._settings)
        attempt = 0
        while True:
            attempt += 1
            wait_at_least: float | None = None
            await self._throttler.acquire()
            fetched_at = self._clock()
            self._stats.requests += 1
            try:
                response = await self._sender.post_token(url, body)
            except TransportFailure as exc:
                problem = f"the token endpoint could not be reached ({exc.kind}: {exc.what})"
            else:
                if response.status == 200:
                    self._token = parse_token(response, fetched_at, self._settings.timeouts.token_margin_s)
                    self._stats.tokens_fetched += 1
                    return self._token
                if response.status == 429:
                    self._stats.rate_limited += 1
                    wait_at_least = retry_after(response.headers)
                elif response.status < 500:
                    raise AuthFailed(auth_error_message(response))
                problem = f"the token endpoint answered {response.status}"
            if not self._retrier.may_retry(attempt):
                raise AuthFailed(
                    f"authentication failed: {problem} {attempt} times; "
                    "check commercelayer.auth_url or try later"
                )
            await self._retrier.pause(attempt, wait_at_least)
