"""The Imports API: creation rules, asynchronous progress, errors_log, interruption, limits."""

from __future__ import annotations

import asyncio
from typing import Any

from importer.sandbox.testing import SandboxClient, SandboxHandle, running_sandbox, seed_pairing

IMPORTS = "/api/imports"


def import_body(inputs: Any, **attributes: Any) -> dict[str, Any]:
    return {
        "data": {
            "type": "imports",
            "attributes": {"resource_type": "customer_payment_sources", "inputs": inputs, **attributes},
        }
    }


def rows(handle: SandboxHandle, n: int, bad: frozenset[int] = frozenset()) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        customer_id, (type_, source_id) = seed_pairing(handle, i)
        out.append(
            {
                "customer_id": "XXXXXXXXXX" if i in bad else customer_id,
                "payment_source_type": type_,
                "payment_source_id": source_id,
                "reference": f"imp-{i}",
                "reference_origin": "import-test",
                "metadata": {"row": i},
            }
        )
    return out


async def wait_done(client: SandboxClient, import_id: str, seen: list[str] | None = None) -> dict[str, Any]:
    for _ in range(200):  # bounded: at most ~10 s
        attrs = (await client.get(f"{IMPORTS}/{import_id}")).body["data"]["attributes"]
        if seen is not None and (not seen or seen[-1] != attrs["status"]):
            seen.append(attrs["status"])
        if attrs["status"] in ("completed", "interrupted"):
            return dict(attrs)
        await asyncio.sleep(0.05)
    raise AssertionError(f"import {import_id} did not finish: {attrs}")


async def test_json_import_goes_pending_in_progress_completed() -> None:
    async with running_sandbox(customers=20, import_rows_per_s=100.0) as handle, handle.client() as client:
        created = await client.post(IMPORTS, import_body(rows(handle, 30), reference="batch-1"))
        assert created.status == 201
        attrs = created.body["data"]["attributes"]
        assert (attrs["status"], attrs["inputs_size"], attrs["processed_count"]) == ("pending", 30, 0)
        assert attrs["started_at"] is None and attrs["reference"] == "batch-1" and attrs["format"] == "json"
        seen = ["pending"]
        final = await wait_done(client, created.body["data"]["id"], seen)
        assert seen == ["pending", "in_progress", "completed"]
        assert (final["processed_count"], final["errors_count"], final["errors_log"]) == (30, 0, {})
        assert final["started_at"] <= final["completed_at"] and final["interrupted_at"] is None
        made = await handle.records("customer_payment_sources")
        assert sorted(r["reference"] for r in made) == sorted(f"imp-{i}" for i in range(30))
        assert {r["reference_origin"] for r in made} == {"import-test"}
        assert sorted(r["metadata"]["row"] for r in made) == list(range(30))
        listed = await client.get(IMPORTS)
        assert listed.body["meta"]["record_count"] == 1
        assert (await handle.stats())["records_created"] == {"imports": 1, "customer_payment_sources": 30}


async def test_csv_import_with_errors_log_keyed_by_index(
    sandbox: SandboxHandle, client: SandboxClient
) -> None:
    good = rows(sandbox, 20)
    lines = ["customer_id,payment_source_type,payment_source_id,reference,metadata"]
    for i, row in enumerate(good):
        customer = "XXXXXXXXXX" if i == 3 else row["customer_id"]
        lines.append(
            f'{customer},{row["payment_source_type"]},{row["payment_source_id"]},csv-{i},"{{""i"": {i}}}"'
        )
    created = await client.post(IMPORTS, import_body("\n".join(lines), format="csv"))
    assert created.status == 201 and created.body["data"]["attributes"]["inputs_size"] == 20
    final = await wait_done(client, created.body["data"]["id"])
    assert final["status"] == "completed"  # 1 error in 20 is under the 10 % threshold
    assert (final["processed_count"], final["errors_count"]) == (19, 1)
    assert final["errors_log"] == {"3": {"customer": ["must exist"]}}
    made = await sandbox.records("customer_payment_sources")
    assert {r["metadata"]["i"] for r in made} == set(range(20)) - {3}


async def test_too_many_errors_interrupt_unless_skip_errors(
    sandbox: SandboxHandle, client: SandboxClient
) -> None:
    bad = frozenset({1, 2, 5})
    created = await client.post(IMPORTS, import_body(rows(sandbox, 20, bad)))
    final = await wait_done(client, created.body["data"]["id"])
    assert final["status"] == "interrupted" and final["interrupted_at"] and final["completed_at"] is None
    assert final["errors_count"] == 3 and final["processed_count"] == 3  # stopped at the 3rd error (index 5)
    assert set(final["errors_log"]) == {"1", "2", "5"}
    created = await client.post(IMPORTS, import_body(rows(sandbox, 20, bad), skip_errors=True))
    final = await wait_done(client, created.body["data"]["id"])
    assert (final["status"], final["processed_count"], final["errors_count"]) == ("completed", 17, 3)


async def test_row_level_problems(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, _ = seed_pairing(sandbox)
    inputs = [
        {"customer_id": customer_id, "payment_source_token": "pm_0001", "customer_token": "cus_1"},
        {"customer_id": customer_id, "payment_source_type": "credit_cards", "payment_source_id": "X"},
        {"customer_id": customer_id, "colour": "red"},
        {"payment_source_token": "pm_2"},
    ]
    created = await client.post(IMPORTS, import_body(inputs, skip_errors=True))
    final = await wait_done(client, created.body["data"]["id"])
    assert final["errors_log"] == {
        "1": {"payment_source": ["is not included in the list"]},
        "2": {"colour": ["is not a valid attribute"]},
        "3": {"customer": ["can't be blank"]},
    }
    (made,) = await sandbox.records("customer_payment_sources")
    assert (made["name"], made["customer_token"]) == ("XXXX-XXXX-XXXX-0001", "cus_1")


async def test_creation_is_validated(sandbox: SandboxHandle, client: SandboxClient) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        (import_body([{}], resource_type="skus"), "resource_type - is not included in the list"),
        ({"data": {"type": "imports", "attributes": {"inputs": [{}]}}}, "resource_type - can't be blank"),
        (import_body([{}], format="xml"), "format - is not included in the list"),
        (import_body([]), "inputs - can't be blank"),
        (import_body("a,b\n1,2"), "inputs - is invalid"),  # a CSV string without format csv
        (import_body([1, 2]), "inputs - is invalid"),
    ]
    for body, detail in cases:
        reply = await client.post(IMPORTS, body)
        assert reply.status == 422 and reply.body["errors"][0]["detail"] == detail


async def test_input_limit_and_running_limit() -> None:
    settings: dict[str, Any] = {
        "customers": 5,
        "import_max_inputs": 5,
        "max_running_imports": 2,
        "import_rows_per_s": 1.0,
    }
    async with running_sandbox(**settings) as handle, handle.client() as client:
        reply = await client.post(IMPORTS, import_body(rows(handle, 6)))
        assert reply.status == 422
        error = reply.body["errors"][0]
        assert error["detail"] == "inputs - is too long (maximum is 5 elements)"
        assert error["meta"] == {"error": "too_long", "count": 5}
        assert [(await client.post(IMPORTS, import_body(rows(handle, 5)))).status for _ in range(2)] == [
            201,
            201,
        ]
        third = await client.post(IMPORTS, import_body(rows(handle, 5)))
        assert third.status == 422 and third.body["errors"][0]["meta"]["error"] == "too_many_imports"
