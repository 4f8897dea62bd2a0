"""The token provider with a scripted sender: caching, single-flight renewal, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from importer.auth import INVALID_CLIENT, AuthFailed, TokenProvider
from importer.config import load_settings
from importer.retry import Backoff
from importer.stats import DispatchStats
from importer.wire import ApiRequest, ApiResponse, TransportFailure


class FakeAuth:
    """Answers token requests from a script; counts them."""

    def __init__(self, *answers: ApiResponse | TransportFailure) -> None:
        self.answers = list(answers)
        self.calls: list[Mapping[str, Any]] = []
        self.issued = 0

    async def post_token(self, url: str, body: Mapping[str, Any]) -> ApiResponse:
        self.calls.append(dict(body))
        await asyncio.sleep(0)  # let other tasks pile up on the lock meanwhile
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, TransportFailure):
                raise answer
            return answer
        self.issued += 1
        return ApiResponse(200, {}, {"access_token": f"token-{self.issued}", "expires_in": 7200})

    async def send(self, request: ApiRequest, token: str) -> ApiResponse:  # pragma: no cover - unused
        raise AssertionError


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class NoThrottle:
    async def acquire(self) -> None:
        return None


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def provider(sender: FakeAuth, clock: Clock, stats: DispatchStats, **overrides: Any) -> TokenProvider:
    values = {
        "commercelayer.auth_url": "http://127.0.0.1:9/oauth/token",
        "commercelayer.client_id": "id",
        "commercelayer.client_secret": "s3cret",
        "commercelayer.scope": "market:id:abc",
        **overrides,
    }
    settings, _ = load_settings(None, overrides=values, env={})
    return TokenProvider(
        sender,
        settings,
        stats,
        clock=clock,
        sleep=no_sleep,
        backoff=Backoff(0.1, 1.0, 3),
        throttler=NoThrottle(),
    )


async def test_token_request_body_and_cache() -> None:
    sender, clock, stats = FakeAuth(), Clock(), DispatchStats()
    tokens = provider(sender, clock, stats)
    assert await tokens.get() == "token-1"
    assert await tokens.get() == "token-1"
    assert sender.calls == [
        {
            "grant_type": "client_credentials",
            "client_id": "id",
            "client_secret": "s3cret",
            "scope": "market:id:abc",
        }
    ]
    clock.now = 7200 - 60 - 0.001  # still inside the lifetime minus the margin
    assert await tokens.get() == "token-1"
    clock.now = 7200 - 60
    assert await tokens.get() == "token-2"
    assert stats.tokens_fetched == 2 and stats.requests == 2


async def test_many_workers_hitting_401_renew_once() -> None:
    sender, clock, stats = FakeAuth(), Clock(), DispatchStats()
    tokens = provider(sender, clock, stats)
    used = await tokens.get()
    renewed = await asyncio.gather(*(tokens.renew(used) for _ in range(20)))
    assert set(renewed) == {"token-2"}
    assert len(sender.calls) == 2 and stats.tokens_fetched == 2


async def test_invalid_client_aborts_with_the_fix() -> None:
    body = {
        "errors": [
            {
                "title": "invalid_client",
                "detail": "Client authentication failed.",
                "code": "UNAUTHORIZED",
                "status": 401,
            }
        ]
    }
    sender, stats = FakeAuth(ApiResponse(401, {}, body)), DispatchStats()
    with pytest.raises(AuthFailed) as info:
        await provider(sender, Clock(), stats).get()
    assert str(info.value) == INVALID_CLIENT
    assert "s3cret" not in str(info.value)
    assert len(sender.calls) == 1  # not retried


async def test_server_errors_and_429_are_retried_then_give_up() -> None:
    sender = FakeAuth(ApiResponse(503, {}, None), ApiResponse(429, {"retry-after": "1"}, None))
    stats = DispatchStats()
    assert await provider(sender, Clock(), stats).get() == "token-1"
    assert stats.retries == 2 and stats.rate_limited == 1
    down = FakeAuth(*[TransportFailure("connect", "127.0.0.1:9")] * 3)
    with pytest.raises(AuthFailed, match="could not be reached"):
        await provider(down, Clock(), DispatchStats()).get()
