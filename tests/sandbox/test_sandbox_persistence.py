"""--state: the SQLite file keeps seed, created records, imports and tokens across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

from importer.sandbox.testing import cps_body, running_sandbox, seed_pairing


async def test_restart_keeps_everything(tmp_path: Path) -> None:
    state = str(tmp_path / "state.sqlite")
    async with running_sandbox(customers=5, state_path=state, import_rows_per_s=1000.0) as handle:
        async with handle.client() as client:
            token = client.token
            created = await client.post("/api/customer_payment_sources", cps_body(*seed_pairing(handle)))
            assert created.status == 201
            customer_id, (type_, source_id) = seed_pairing(handle, 1)
            body = {
                "data": {
                    "type": "imports",
                    "attributes": {
                        "resource_type": "customer_payment_sources",
                        "inputs": [
                            {
                                "customer_id": customer_id,
                                "payment_source_type": type_,
                                "payment_source_id": source_id,
                            }
                        ],
                    },
                }
            }
            imported = await client.post("/api/imports", body)
            for _ in range(100):
                status = (await client.get(f"/api/imports/{imported.body['data']['id']}")).body["data"][
                    "attributes"
                ]
                if status["status"] == "completed":
                    break
                await asyncio.sleep(0.05)
        customers_before = sorted(handle.store.tables["customers"].rows)
        records_before = await handle.records()
    assert Path(state).exists()
    # A different seed on restart does not matter: the saved state wins.
    async with running_sandbox(customers=50, seed=999, state_path=state) as handle:
        assert sorted(handle.store.tables["customers"].rows) == customers_before
        assert await handle.records() == records_before and len(records_before) == 2
        async with handle.client(token=token) as client:  # the old token still works
            shown = await client.get(f"/api/customer_payment_sources/{created.body['data']['id']}")
            assert shown.status == 200  # (the links differ: a new port)
            assert shown.body["data"]["attributes"] == created.body["data"]["attributes"]
            imp = await client.get(f"/api/imports/{imported.body['data']['id']}")
            assert imp.body["data"]["attributes"]["status"] == "completed"
            again = await client.post("/api/customer_payment_sources", cps_body(*seed_pairing(handle, 2)))
            assert again.status == 201
        await handle.expire_tokens()
    async with running_sandbox(state_path=state) as handle:
        assert len(await handle.records()) == 3
        async with handle.client(token=token) as client:
            assert (await client.get("/api/customers")).status == 401  # expiry persisted too
        await handle.reset()
    async with running_sandbox(state_path=state) as handle:
        assert await handle.records() == [] and len(handle.store.tables["customers"]) == 5
