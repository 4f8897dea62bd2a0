"""The /_sandbox routes: stats, records, request log, reset, windows, settings."""

from __future__ import annotations

import aiohttp

from importer.sandbox.testing import SandboxClient, SandboxHandle, cps_body, seed_pairing

CPS = "/api/customer_payment_sources"


async def test_stats_and_request_log(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, source = seed_pairing(sandbox)
    await client.post(CPS, cps_body(customer_id, source))
    await client.get(f"/api/customers/{customer_id}")
    await client.get("/api/customers/XXXXXXXXXX")
    stats = await sandbox.stats()
    assert stats["requests"] == {
        "POST /oauth/token": {"200": 1},
        "POST /api/customer_payment_sources": {"201": 1},
        "GET /api/customers/{id}": {"200": 1, "404": 1},
    }
    assert stats["requests_total"] == 4 and stats["records_created"] == {"customer_payment_sources": 1}
    assert stats["records"]["customers"] == 20 and stats["records"]["customer_payment_sources"] == 1
    assert stats["duplicates"] == {"count": 0, "pairs": []}
    log = await sandbox.requests_log()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("POST", "/oauth/token", 200),
        ("POST", CPS, 201),
        ("GET", "/api/customers/{id}", 200),
        ("GET", "/api/customers/{id}", 404),
    ]
    assert all(e["ip"] == "127.0.0.1" and e["rate_limited"] is False and e["fault"] is None for e in log)
    times = [e["t"] for e in log]
    assert times == sorted(times) and times[0] >= 0


async def test_records_and_reset_keep_the_seed(sandbox: SandboxHandle, client: SandboxClient) -> None:
    await client.post(CPS, cps_body(*seed_pairing(sandbox)))
    (record,) = await sandbox.records("customer_payment_sources")
    assert {"id", "customer_id", "payment_source_type", "payment_source_id", "created_at"} <= set(record)
    assert len(await sandbox.records("customers")) == 20
    await sandbox.reset()
    assert await sandbox.records() == []
    assert len(await sandbox.records("customers")) == 20
    assert await sandbox.requests_log() == []
    assert (await client.get("/api/customers")).status == 200  # tokens survive a reset
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox.base_url}/_sandbox/records?type=orders") as response,
    ):
        assert response.status == 400


async def test_admin_routes_are_not_rate_limited_or_logged(sandbox: SandboxHandle) -> None:
    for _ in range(60):
        await sandbox.stats()
    assert await sandbox.requests_log() == []
    windows = await sandbox.windows_max()
    assert windows == {"burst": {}, "average": {}, "token": {}}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{sandbox.base_url}/_sandbox/settings") as response:
            settings = await response.json()
        async with session.get(f"{sandbox.base_url}/_sandbox/faults") as response:
            faults = await response.json()
    assert settings["time_scale"] == 0.05 and "client_secret" not in settings
    assert faults["faults"]["error_5xx"] == 0.0 and faults["storm_remaining_s"] == 0
