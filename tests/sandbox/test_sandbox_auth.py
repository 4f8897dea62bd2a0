"""POST /oauth/token and the bearer token on /api, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
import time

import aiohttp

from importer.sandbox.testing import SandboxClient, SandboxHandle, running_sandbox

INVALID_CLIENT = {
    "errors": [
        {
            "title": "invalid_client",
            "detail": "Client authentication failed due to unknown client, "
            "no client authentication included, or unsupported authentication method.",
            "code": "UNAUTHORIZED",
            "status": 401,
        }
    ]
}
INVALID_TOKEN = {
    "errors": [
        {
            "title": "Invalid token",
            "detail": "The access token you provided is invalid.",
            "code": "INVALID_TOKEN",
            "status": "401",
        }
    ]
}


def creds(handle: SandboxHandle, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": handle.client_id,
        "client_secret": handle.client_secret,
        **extra,
    }


async def test_token_as_json_and_as_form(sandbox: SandboxHandle) -> None:
    async with aiohttp.ClientSession() as session:
        before = int(time.time())
        async with session.post(sandbox.auth_url, json=creds(sandbox)) as response:
            assert response.status == 200
            body = await response.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "scope", "created_at"}
        assert (body["token_type"], body["expires_in"], body["scope"]) == ("bearer", 7200, "market:all")
        assert before <= body["created_at"] <= int(time.time())
        async with session.post(sandbox.auth_url, data=creds(sandbox, scope="market:id:xYz")) as response:
            form = await response.json()
        assert response.status == 200 and form["scope"] == "market:id:xYz"
        assert form["access_token"] != body["access_token"] and len(body["access_token"]) >= 40
    stats = await sandbox.stats()
    assert stats["tokens_issued"] == 2


async def test_wrong_client_gets_401_with_numeric_status(sandbox: SandboxHandle) -> None:
    async with aiohttp.ClientSession() as session:
        for wrong in ({"client_secret": "nope"}, {"client_id": "nope"}):
            async with session.post(sandbox.auth_url, json={**creds(sandbox), **wrong}) as response:
                assert response.status == 401
                assert await response.json() == INVALID_CLIENT
        async with session.post(
            sandbox.auth_url, json={**creds(sandbox), "grant_type": "password"}
        ) as response:
            assert response.status == 400
            assert (await response.json())["errors"][0]["title"] == "unsupported_grant_type"


async def test_basic_auth_client_credentials(sandbox: SandboxHandle) -> None:
    basic = base64.b64encode(f"{sandbox.client_id}:{sandbox.client_secret}".encode()).decode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            sandbox.auth_url,
            json={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        ) as response,
    ):
        assert response.status == 200


async def test_token_endpoint_allows_30_per_window_then_429() -> None:
    async with running_sandbox(customers=1) as handle, aiohttp.ClientSession() as session:
        statuses = []
        for _ in range(31):
            async with session.post(handle.auth_url, json=creds(handle)) as response:
                statuses.append(response.status)
                body = await response.json()
        assert statuses == [200] * 30 + [429]
        assert body["errors"][0]["code"] == "TOO_MANY_REQUESTS"
        stats = await handle.stats()
        assert stats["too_many_requests"]["rate_limit"] == 1 and stats["tokens_issued"] == 30


async def test_api_needs_a_valid_bearer_token(sandbox: SandboxHandle, client: SandboxClient) -> None:
    ok = await client.get("/api/customers")
    assert ok.status == 200
    for headers in (
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": "Basic abc"},
        {"Authorization": ""},
    ):
        reply = await client.request("GET", "/api/customers", headers=headers)
        assert reply.status == 401 and reply.body == INVALID_TOKEN
        assert reply.headers["Content-Type"].startswith("application/vnd.api+json")


async def test_expired_tokens_get_invalid_token(sandbox: SandboxHandle, client: SandboxClient) -> None:
    assert (await client.get("/api/customers")).status == 200
    assert await sandbox.expire_tokens() >= 1
    reply = await client.get("/api/customers")
    assert reply.status == 401 and reply.body == INVALID_TOKEN
    async with sandbox.client() as fresh:
        assert (await fresh.get("/api/customers")).status == 200


async def test_short_token_lifetime() -> None:
    async with running_sandbox(customers=1, token_ttl_s=0.3) as handle, handle.client() as api:
        assert (await api.get("/api/customers")).status == 200
        for _ in range(40):  # bounded: at most 2 s
            await asyncio.sleep(0.05)
            reply = await api.get("/api/customers")
            if reply.status == 401:
                break
        assert reply.status == 401 and reply.body == INVALID_TOKEN


async def test_tokens_and_secrets_never_reach_the_logs(sandbox: SandboxHandle, client: SandboxClient) -> None:
    await client.get("/api/customers")
    await client.request("GET", "/api/customers", headers={"Authorization": "Bearer some-leaked-token"})
    async with aiohttp.ClientSession() as session:
        log = await (await session.get(f"{sandbox.base_url}/_sandbox/requests")).text()
        stats = await (await session.get(f"{sandbox.base_url}/_sandbox/stats")).text()
        settings = await (await session.get(f"{sandbox.base_url}/_sandbox/settings")).text()
    for text in (log, stats, settings):
        assert client.token not in text and "some-leaked-token" not in text
        assert sandbox.client_secret not in text
