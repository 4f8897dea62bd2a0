"""Injected faults: off by default, reproducible from fault_seed, counted by kind."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from importer.sandbox.testing import SandboxClient, SandboxHandle, cps_body, running_sandbox, seed_pairing

CPS = "/api/customer_payment_sources"


async def test_error_5xx_before_anything_is_written(sandbox: SandboxHandle, client: SandboxClient) -> None:
    await sandbox.set_faults(error_5xx=1.0)
    body = cps_body(*seed_pairing(sandbox))
    replies = [await client.post(CPS, body) for _ in range(6)]
    assert {r.status for r in replies} <= {500, 502, 503} and len(replies) == 6
    for reply in replies:
        if reply.status == 500:
            assert reply.body["errors"][0]["code"] == "INTERNAL_SERVER_ERROR"
        else:
            assert isinstance(reply.body, str) and "<html>" in reply.body
    assert sandbox.store.tables["customer_payment_sources"].rows == {}
    assert (await client.get("/api/customers")).status == 200  # scope "create": reads are spared
    await sandbox.set_faults(error_5xx_scope="api")
    assert (await client.get("/api/customers")).status in (500, 502, 503)
    stats = await sandbox.stats()
    assert stats["faults"] == {"error_5xx": 7}


async def test_commit_then_fail_502_keeps_the_record(sandbox: SandboxHandle, client: SandboxClient) -> None:
    await sandbox.set_faults(commit_then_fail=1.0)
    reply = await client.post(CPS, cps_body(*seed_pairing(sandbox)))
    assert reply.status == 502
    assert len(await sandbox.records()) == 1
    assert (await sandbox.stats())["faults"] == {"commit_then_fail": 1}


async def test_commit_then_fail_drop_keeps_the_record(sandbox: SandboxHandle, client: SandboxClient) -> None:
    await sandbox.set_faults(commit_then_fail=1.0, commit_then_fail_mode="drop")
    with pytest.raises(aiohttp.ClientError):
        await client.post(CPS, cps_body(*seed_pairing(sandbox)))
    assert len(await sandbox.records()) == 1
    (entry,) = [e for e in await sandbox.requests_log() if e["method"] == "POST" and e["path"] == CPS]
    assert (entry["status"], entry["fault"]) == (0, "commit_then_fail")


async def test_connection_reset_before_anything(sandbox: SandboxHandle, client: SandboxClient) -> None:
    await sandbox.set_faults(connection_reset=1.0)
    with pytest.raises(aiohttp.ClientError):
        await client.post(CPS, cps_body(*seed_pairing(sandbox)))
    assert await sandbox.records() == []
    await sandbox.set_faults(connection_reset=0.0)
    assert (await client.get("/api/customers")).status == 200
    assert (await sandbox.stats())["faults"]["connection_reset"] >= 1


async def test_slow_response_triggers_client_timeouts(sandbox: SandboxHandle, client: SandboxClient) -> None:
    await sandbox.set_faults(slow_response=1.0, slow_response_s=1.0)
    timeout = aiohttp.ClientTimeout(total=0.2)
    with pytest.raises(asyncio.TimeoutError):
        async with client.session.get(
            f"{sandbox.base_url}/api/customers", headers=sandbox.api_headers(client.token), timeout=timeout
        ):
            pass
    await sandbox.set_faults(slow_response=0.0)
    assert (await sandbox.stats())["faults"] == {"slow_response": 1}


async def test_latency_is_injected_and_counted(sandbox: SandboxHandle, client: SandboxClient) -> None:
    await sandbox.set_faults(latency_median_s=0.001, latency_sigma=0.5)
    for _ in range(5):
        assert (await client.get("/api/customers")).status == 200
    assert (await sandbox.stats())["faults"] == {"latency": 5}


async def test_storm_now_for_n_seconds(sandbox: SandboxHandle, client: SandboxClient) -> None:
    faults = await sandbox.set_faults(storm_s=0.3)
    assert 0 < faults["storm_remaining_s"] <= 0.3
    reply = await client.get("/api/customers")
    assert reply.status == 429 and reply.body["errors"][0]["code"] == "TOO_MANY_REQUESTS"
    assert "X-Ratelimit-Limit" in reply.headers
    for _ in range(40):  # bounded: at most 2 s
        await asyncio.sleep(0.05)
        if (await client.get("/api/customers")).status == 200:
            break
    else:
        raise AssertionError("the storm did not end")
    stats = await sandbox.stats()
    assert stats["too_many_requests"]["storm"] == stats["faults"]["storm"] >= 1
    assert stats["too_many_requests"]["rate_limit"] == 0


async def test_storm_from_settings_window() -> None:
    async with (
        running_sandbox(customers=1, storm_start_s=0.0, storm_duration_s=30.0) as handle,
        handle.client() as c,
    ):
        assert (await c.get("/api/customers")).status == 429


async def test_faults_are_reproducible_from_the_seed() -> None:
    async def run(seed: int) -> list[int]:
        async with (
            running_sandbox(customers=3, error_5xx=0.5, fault_seed=seed) as handle,
            handle.client() as c,
        ):
            body = cps_body(*seed_pairing(handle))
            return [(await c.post(CPS, body)).status for _ in range(12)]

    first, again, other = await run(7), await run(7), await run(8)
    assert first == again and first != other
    assert 201 in first and any(s >= 500 for s in first)


async def test_bad_fault_changes_are_refused(sandbox: SandboxHandle) -> None:
    async with aiohttp.ClientSession() as session:
        for body in ({"nope": 1}, {"error_5xx": 2}, {"client_secret": "x"}, [1]):
            async with session.post(f"{sandbox.base_url}/_sandbox/faults", json=body) as response:
                assert response.status == 400
                assert "error" in await response.json()


async def test_unauthorized_for_chosen_customers_only(sandbox: SandboxHandle, client: SandboxClient) -> None:
    denied, source = seed_pairing(sandbox, 0)
    allowed, other = seed_pairing(sandbox, 1)
    await sandbox.set_faults(unauthorized_customers=f"{denied}, NoSuchOne1")
    reply = await client.post(CPS, cps_body(denied, source))
    assert reply.status == 401
    assert reply.body["errors"] == [
        {
            "title": "Access denied",
            "detail": "You are not authorized to perform this action on the requested resource.",
            "code": "UNAUTHORIZED",
            "status": "401",
        }
    ]
    assert (await client.post(CPS, cps_body(allowed, other))).status == 201
    await sandbox.set_faults(unauthorized_customers="", unauthorized=1.0)
    assert (await client.post(CPS, cps_body(allowed, source))).status == 401
    assert len(await sandbox.records()) == 1
    assert (await sandbox.stats())["faults"] == {"unauthorized": 2}


@pytest.mark.parametrize("unseen", [False, True])
async def test_conflict_409(sandbox: SandboxHandle, client: SandboxClient, unseen: bool) -> None:
    await sandbox.set_faults(conflict_409=1.0, conflict_409_unseen=unseen)
    reply = await client.post(CPS, cps_body(*seed_pairing(sandbox)))
    assert reply.status == 409
    error = reply.body["errors"][0]
    assert (error["code"], error["title"], error["status"]) == (
        "RECORD_NOT_UNIQUE",
        "Record not unique",
        "409",
    )
    assert "You can safely ignore this warning." in error["detail"]
    assert len(await sandbox.records()) == (0 if unseen else 1)  # stored first: a concurrent writer won
    assert (await sandbox.stats())["faults"] == {"conflict_409": 1}


async def _one_record(sandbox: SandboxHandle, client: SandboxClient) -> str:
    reply = await client.post(CPS, cps_body(*seed_pairing(sandbox)))
    assert reply.status == 201
    return str(reply.body["data"]["id"])


def _patch(record_id: str) -> dict[str, object]:
    return {"data": {"type": "customer_payment_sources", "id": record_id, "attributes": {"reference": "r2"}}}


async def test_delete_and_patch_spared_by_the_create_scopes(
    sandbox: SandboxHandle, client: SandboxClient
) -> None:
    record_id = await _one_record(sandbox, client)
    await sandbox.set_faults(error_5xx=1.0, commit_then_fail=1.0)  # both scopes default to `create`
    assert (await client.request("PATCH", f"{CPS}/{record_id}", json=_patch(record_id))).status == 200
    reply = await client.request("DELETE", f"{CPS}/{record_id}")
    assert (reply.status, reply.body) == (204, None)
    again = await client.request("DELETE", f"{CPS}/{record_id}")
    assert again.status == 404 and again.body["errors"][0]["code"] == "RECORD_NOT_FOUND"
    assert (await sandbox.stats())["records_deleted"] == {"customer_payment_sources": 1}


async def test_error_5xx_scope_writes_hits_patch_and_delete_before_writing(
    sandbox: SandboxHandle, client: SandboxClient
) -> None:
    record_id = await _one_record(sandbox, client)
    await sandbox.set_faults(error_5xx=1.0, error_5xx_scope="writes")
    assert (await client.request("PATCH", f"{CPS}/{record_id}", json=_patch(record_id))).status in (
        500,
        502,
        503,
    )
    assert (await client.request("DELETE", f"{CPS}/{record_id}")).status in (500, 502, 503)
    assert (await client.get("/api/customers")).status == 200  # reads are spared
    (record,) = await sandbox.records()
    assert record["id"] == record_id and record["reference"] != "r2"


@pytest.mark.parametrize("mode", ["502", "drop"])
async def test_commit_then_fail_scope_writes_deletes_then_loses_the_answer(
    sandbox: SandboxHandle, client: SandboxClient, mode: str
) -> None:
    first, second = await _one_record(sandbox, client), await _one_record(sandbox, client)
    await sandbox.set_faults(
        commit_then_fail=1.0, commit_then_fail_scope="writes", commit_then_fail_mode=mode
    )
    if mode == "502":
        assert (await client.request("PATCH", f"{CPS}/{first}", json=_patch(first))).status == 502
        assert (await client.request("DELETE", f"{CPS}/{second}")).status == 502
    else:
        with pytest.raises(aiohttp.ClientError):
            await client.request("PATCH", f"{CPS}/{first}", json=_patch(first))
        # aiohttp itself may send a DELETE again on a new connection when the pooled one drops
        # (it is idempotent); the log shows the first one was done and its answer lost.
        with contextlib.suppress(aiohttp.ClientError):
            await client.request("DELETE", f"{CPS}/{second}")
        deletes = [e for e in await sandbox.requests_log() if e["method"] == "DELETE"]
        assert (deletes[0]["status"], deletes[0]["fault"]) == (0, "commit_then_fail")
    (record,) = await sandbox.records()  # the DELETE was done, the PATCH too
    assert record["id"] == first and record["reference"] == "r2"
    assert (await sandbox.stats())["faults"] == {"commit_then_fail": 2}
