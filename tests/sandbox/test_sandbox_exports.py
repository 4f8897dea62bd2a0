"""The Exports API, the reference look-up of imports, and the faults of both endpoints."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from importer.sandbox.testing import SandboxClient, SandboxHandle, running_sandbox, seed_pairing

EXPORTS = "/api/exports"
IMPORTS = "/api/imports"


def export_body(**attributes: Any) -> dict[str, Any]:
    return {
        "data": {"type": "exports", "attributes": {"resource_type": "customer_payment_sources", **attributes}}
    }


def import_body(inputs: Any, **attributes: Any) -> dict[str, Any]:
    return {
        "data": {
            "type": "imports",
            "attributes": {"resource_type": "customer_payment_sources", "inputs": inputs, **attributes},
        }
    }


def inputs(handle: SandboxHandle, n: int) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        customer_id, (type_, source_id) = seed_pairing(handle, i)
        out.append(
            {
                "customer_id": customer_id,
                "payment_source_type": type_,
                "payment_source_id": source_id,
                "metadata": {"row": i},
            }
        )
    return out


async def finished(client: SandboxClient, path: str) -> dict[str, Any]:
    for _ in range(200):  # bounded: at most ~10 s
        attrs = (await client.get(path)).body["data"]["attributes"]
        if attrs["status"] in ("completed", "interrupted", "failed"):
            return dict(attrs)
        await asyncio.sleep(0.05)
    raise AssertionError(f"{path} did not finish")


async def download(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        raw = await resp.read()
        return resp.status, json.loads(raw) if resp.status == 200 else raw.decode()


async def test_an_export_is_filtered_and_its_file_holds_flat_records() -> None:
    async with running_sandbox(customers=20, import_rows_per_s=5000.0) as handle, handle.client() as client:
        created = await client.post(IMPORTS, import_body(inputs(handle, 12)))
        await finished(client, f"{IMPORTS}/{created.body['data']['id']}")
        first_two = sorted({seed_pairing(handle, i)[0] for i in range(2)})
        reply = await client.post(EXPORTS, export_body(filters={"customer_id_in": first_two}))
        assert reply.status == 201
        attrs = reply.body["data"]["attributes"]
        assert attrs["status"] == "pending" and attrs["attachment_url"] is None
        wanted = [r for r in await handle.records() if r["customer_id"] in first_two]
        assert attrs["records_count"] == len(wanted) > 0
        final = await finished(client, f"{EXPORTS}/{reply.body['data']['id']}")
        assert final["status"] == "completed" and final["processed_count"] == len(wanted)
        status, records = await download(final["attachment_url"])  # no token: a pre-signed link
        assert status == 200
        assert sorted(r["id"] for r in records) == sorted(r["id"] for r in wanted)
        one = records[0]
        assert {"customer_id", "payment_source_type", "payment_source_id", "metadata"} <= set(one)
        assert one["customer_id"] in first_two and "row" in one["metadata"]


async def test_customers_are_exported_by_email_with_the_case_rule_of_the_gets() -> None:
    for case_sensitive in (True, False):
        async with (
            running_sandbox(customers=5, email_case_sensitive=case_sensitive) as handle,
            handle.client() as client,
        ):
            customers = list(handle.store.tables["customers"].rows.values())
            stored = customers[0]["email"]
            asked = [stored.upper(), customers[1]["email"], "nobody@example.com"]
            body = export_body(resource_type="customers", filters={"email_in": asked})
            reply = await client.post(EXPORTS, body)
            assert reply.status == 201
            final = await finished(client, f"{EXPORTS}/{reply.body['data']['id']}")
            status, records = await download(final["attachment_url"])
            assert status == 200
            found = {r["id"]: r["email"] for r in records}
            assert set(records[0]) >= {"id", "email", "created_at", "metadata"}
            assert found.get(customers[1]["id"]) == customers[1]["email"]
            # The upper-cased address reaches its customer only where the server folds case.
            assert (customers[0]["id"] in found) is (not case_sensitive or stored == stored.upper())
            assert len(found) == (2 if not case_sensitive else 1 + (stored == stored.upper()))


async def test_the_cap_unknown_filters_and_the_link_expiry() -> None:
    async with (
        running_sandbox(
            customers=20, import_rows_per_s=5000.0, export_max_records=5, export_link_ttl_s=0.2
        ) as handle,
        handle.client() as client,
    ):
        created = await client.post(IMPORTS, import_body(inputs(handle, 8)))
        await finished(client, f"{IMPORTS}/{created.body['data']['id']}")
        too_many = await client.post(EXPORTS, export_body())
        assert too_many.status == 422
        assert too_many.body["errors"][0]["meta"]["error"] == "too_many_records"
        unknown = await client.post(EXPORTS, export_body(filters={"colour_eq": "red"}))
        assert unknown.status == 400 and unknown.body["errors"][0]["code"] == "FILTER_NOT_ALLOWED"
        customer = seed_pairing(handle, 0)[0]
        reply = await client.post(EXPORTS, export_body(filters={"customer_id_eq": customer}))
        final = await finished(client, f"{EXPORTS}/{reply.body['data']['id']}")
        assert (await download(final["attachment_url"]))[0] == 200
        for _ in range(100):  # bounded: the link lives 0.2 s
            status, text = await download(final["attachment_url"])
            if status != 200:
                break
            await asyncio.sleep(0.02)
        assert status == 403 and "expired" in text
        again = (await client.get(f"{EXPORTS}/{reply.body['data']['id']}")).body["data"]["attributes"]
        assert again["attachment_url"] == final["attachment_url"]  # not renewed by reading it again


async def test_imports_are_found_by_reference_and_the_rate_changes_at_run_time() -> None:
    async with running_sandbox(customers=20, import_rows_per_s=1.0) as handle, handle.client() as client:
        await client.post(IMPORTS, import_body(inputs(handle, 3), reference="run-1-0001"))
        await client.post(IMPORTS, import_body(inputs(handle, 3)[1:], reference="run-1-0002"))
        found = await client.get(IMPORTS, **{"filter[q][reference_eq]": "run-1-0002"})
        assert [r["attributes"]["reference"] for r in found.body["data"]] == ["run-1-0002"]
        attrs = found.body["data"][0]["attributes"]
        assert attrs["status"] in ("pending", "in_progress")
        await handle.set_faults(import_rows_per_s=10_000)
        final = await finished(client, f"{IMPORTS}/{found.body['data'][0]['id']}")
        assert final["status"] == "completed"


async def test_faults_on_the_imports_and_exports_endpoints() -> None:
    async with running_sandbox(customers=20, import_rows_per_s=5000.0) as handle, handle.client() as client:
        await handle.set_faults(imports_error_5xx=1.0)
        reply = await client.post(IMPORTS, import_body(inputs(handle, 2), reference="a"))
        assert reply.status in (500, 502, 503)
        assert (await client.get(IMPORTS)).body["meta"]["record_count"] == 0  # nothing was created
        await handle.set_faults(imports_error_5xx=0.0, imports_lost_answer=1.0)
        reply = await client.post(IMPORTS, import_body(inputs(handle, 2), reference="b"))
        assert reply.status == 502
        found = await client.get(IMPORTS, **{"filter[q][reference_eq]": "b"})
        assert found.body["meta"]["record_count"] == 1  # created, its answer lost
        await handle.set_faults(imports_lost_answer=0.0, exports_error_5xx=1.0)
        reply = await client.post(EXPORTS, export_body())
        assert reply.status in (500, 502, 503)
        assert (await client.get(EXPORTS)).body["meta"]["record_count"] == 0
        faults = (await handle.stats())["faults"]
        assert faults["imports_error_5xx"] == 1 and faults["imports_lost_answer"] == 1
        assert faults["exports_error_5xx"] == 1
