"""Rate limits over HTTP: burst per endpoint, average per class, headers, 429 body, per IP."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from importer.sandbox.testing import SandboxClient, SandboxHandle, cps_body, running_sandbox, seed_pairing

CPS = "/api/customer_payment_sources"
TOO_MANY = {
    "errors": [
        {
            "title": "Too many requests",
            "detail": "The request was not accepted because you hit one of the rate limits",
            "code": "TOO_MANY_REQUESTS",
            "status": "429",
        }
    ]
}


async def post_n(handle: SandboxHandle, client: SandboxClient, n: int) -> list[int]:
    customer_id, source = seed_pairing(handle)
    return [(await client.post(CPS, cps_body(customer_id, source))).status for _ in range(n)]


async def test_request_after_a_full_burst_gets_429_and_other_endpoints_do_not() -> None:
    async with running_sandbox(customers=2, burst_limit=5) as handle, handle.client() as client:
        assert await post_n(handle, client, 5) == [201] * 5
        reply = await client.post(CPS, cps_body(*seed_pairing(handle)))
        assert reply.status == 429 and reply.body == TOO_MANY
        assert "Retry-After" not in reply.headers
        assert (reply.headers["X-Ratelimit-Limit"], reply.headers["X-Ratelimit-Interval"]) == ("100", "60")
        assert len(handle.store.tables["customer_payment_sources"]) == 5
        listed = await client.get(CPS)  # GET is another endpoint, with its own burst window
        assert listed.status == 200 and listed.headers["X-Ratelimit-Remaining"] == "94"
        stats = await handle.stats()
        assert stats["requests"]["POST /api/customer_payment_sources"] == {"201": 5, "429": 1}
        assert stats["too_many_requests"] == {"rate_limit": 1, "storm": 0, "total": 1}
        log = [e for e in await handle.requests_log() if e["path"] == "/api/customer_payment_sources"]
        assert [e["rate_limited"] for e in log] == [False] * 5 + [True, False]


async def test_burst_window_slides() -> None:
    # time_scale 0.02: the 10 s burst window lasts 0.2 s.
    async with (
        running_sandbox(customers=2, burst_limit=3, time_scale=0.02) as handle,
        handle.client() as client,
    ):
        statuses = await post_n(handle, client, 4)
        assert statuses[:3] == [201] * 3  # (the 4th may land after the window slid on a slow machine)
        await asyncio.sleep(0.25)
        assert await post_n(handle, client, 3) == [201] * 3


async def test_resetting_the_windows_gives_room_at_once_and_keeps_the_record() -> None:
    # A 10 s burst window (time_scale 1): only the reset, never the clock, can make room here.
    async with running_sandbox(customers=2, burst_limit=3) as handle, handle.client() as client:
        assert await post_n(handle, client, 4) == [201, 201, 201, 429]
        assert await handle.reset_windows() >= 2  # the burst window and the average pool held requests
        assert await post_n(handle, client, 4) == [201, 201, 201, 429]
        assert await handle.reset_windows() >= 2
        assert await handle.reset_windows() == 0  # nothing held since the last reset
        limits = await handle.windows_max()
        assert limits["burst"]["POST /api/customer_payment_sources"]["max"] == 3  # history stays
        stats = await handle.stats()
        assert stats["records"]["customer_payment_sources"] == 6  # records stay too
        assert stats["too_many_requests"]["rate_limit"] == 2


async def test_average_pool_is_shared_by_reads_and_writes_by_default() -> None:
    async with running_sandbox(customers=2, average_limit=6) as handle, handle.client() as client:
        assert await post_n(handle, client, 3) == [201] * 3
        assert [(await client.get("/api/customers")).status for _ in range(3)] == [200] * 3
        reply = await client.get("/api/payment_methods")
        assert reply.status == 429 and reply.headers["X-Ratelimit-Remaining"] == "0"
        assert reply.headers["X-Ratelimit-Limit"] == "6"
        assert (await client.get("/api/imports")).status == 200  # cacheable: a pool of its own


async def test_separate_average_pools_when_configured() -> None:
    settings: dict[str, Any] = {"customers": 2, "average_limit": 3, "shared_average_pool": False}
    async with running_sandbox(**settings) as handle, handle.client() as client:
        assert await post_n(handle, client, 3) == [201] * 3
        assert [(await client.get("/api/customers")).status for _ in range(3)] == [200] * 3
        assert (await client.get("/api/payment_methods")).status == 429
        assert (await client.post(CPS, cps_body(*seed_pairing(handle)))).status == 429


async def test_headers_on_every_api_response_per_class_and_env() -> None:
    async with running_sandbox(customers=2) as handle, handle.client() as client:
        ok = await client.get("/api/customers")
        assert [
            ok.headers[h] for h in ("X-Ratelimit-Limit", "X-Ratelimit-Interval", "X-Ratelimit-Remaining")
        ] == [
            "100",
            "60",
            "99",
        ]
        assert (await client.get("/api/customers")).headers["X-Ratelimit-Remaining"] == "98"
        imports = await client.get("/api/imports")
        assert (imports.headers["X-Ratelimit-Limit"], imports.headers["X-Ratelimit-Remaining"]) == (
            "500",
            "499",
        )
        for reply in (
            await client.get("/api/customers/XXXXXXXXXX"),
            await client.request("GET", "/api/customers", headers={"Authorization": "Bearer bad"}),
        ):
            assert reply.status in (401, 404) and "X-Ratelimit-Limit" in reply.headers
    async with running_sandbox(customers=2, env="live", time_scale=0.5) as handle, handle.client() as client:
        reply = await client.get("/api/customers")
        assert (reply.headers["X-Ratelimit-Limit"], reply.headers["X-Ratelimit-Interval"]) == ("200", "30")
        assert (await client.get("/api/imports")).headers["X-Ratelimit-Limit"] == "1000"
        assert (await client.get("/api/customers")).body["data"][0]["meta"] == {"mode": "live"}


async def test_retry_after_when_enabled() -> None:
    async with (
        running_sandbox(customers=2, burst_limit=2, retry_after=True) as handle,
        handle.client() as client,
    ):
        await post_n(handle, client, 2)
        reply = await client.post(CPS, cps_body(*seed_pairing(handle)))
        assert reply.status == 429 and 1 <= int(reply.headers["Retry-After"]) <= 10


async def test_no_window_ever_holds_more_than_its_limit_under_a_concurrent_burst() -> None:
    async with (
        running_sandbox(customers=2, burst_limit=5, average_limit=8) as handle,
        handle.client() as client,
    ):
        body = cps_body(*seed_pairing(handle))
        replies = await asyncio.gather(*(client.post(CPS, body) for _ in range(30)))
        statuses = sorted(r.status for r in replies)
        assert statuses == [201] * 5 + [429] * 25
        replies = await asyncio.gather(*(client.get("/api/customers") for _ in range(10)))
        assert sorted(r.status for r in replies) == [200] * 3 + [429] * 7
        windows = await handle.windows_max()
        assert windows["burst"]["POST /api/customer_payment_sources"] == {
            "max": 5,
            "limit": 5,
            "window_s": 10.0,
        }
        assert windows["average"]["uncacheable"] == {"max": 8, "limit": 8, "window_s": 60.0}
        assert windows["token"]["POST /oauth/token"]["max"] == 1


async def test_limits_are_per_client_ip() -> None:
    async with running_sandbox(customers=2, burst_limit=2) as handle, handle.client() as first:
        assert [(await first.get("/api/customers")).status for _ in range(3)] == [200, 200, 429]
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
        async with aiohttp.ClientSession(connector=connector) as session:
            other = SandboxClient(session, handle.base_url, first.token)
            assert (await other.get("/api/customers")).status == 200
        ips = {e["ip"] for e in await handle.requests_log()}
        assert ips == {"127.0.0.1", "127.0.0.2"}
