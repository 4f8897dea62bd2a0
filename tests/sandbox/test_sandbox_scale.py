"""Many records: indexed look-ups stay exact, and concurrent clients are all answered."""

from __future__ import annotations

import asyncio
from typing import Any

from importer.models import PAYMENT_SOURCE_TYPES
from importer.sandbox.testing import running_sandbox, stored

N = 10_000


async def test_lookups_among_10k_records_under_concurrency() -> None:
    settings: dict[str, Any] = {"customers": 200, "burst_limit": 100_000, "average_limit": 100_000}
    async with running_sandbox(**settings) as handle, handle.client() as client:
        store = handle.store
        customers = list(store.tables["customers"].rows)
        sources = [(t, i) for t in PAYMENT_SOURCE_TYPES for i in store.tables[t].rows]
        for n in range(N):
            type_, source_id = sources[n % len(sources)]
            store.create(
                "customer_payment_sources",
                {
                    "customer_id": customers[n % len(customers)],
                    "payment_method_id": None,
                    "payment_source_type": type_,
                    "payment_source_id": source_id,
                    "customer_token": None,
                    "payment_source_token": f"pm_{n}",
                    "reference": f"ref-{n}",
                    "reference_origin": "scale",
                    "metadata": {"n": n},
                    "name": None,
                },
            )

        async def by_reference(n: int) -> str:
            reply = await client.get(
                "/api/customer_payment_sources", **{"filter[q][reference_eq]": f"ref-{n}"}
            )
            assert reply.status == 200 and reply.body["meta"]["record_count"] == 1
            return str(reply.body["data"][0]["attributes"]["payment_source_token"])

        picks = range(0, N, 50)
        assert await asyncio.gather(*(by_reference(n) for n in picks)) == [f"pm_{n}" for n in picks]
        wallet = await client.get(
            "/api/customer_payment_sources",
            **{"filter[q][customer_id_eq]": customers[7], "filter[q][payment_source_token_eq]": "pm_207"},
        )
        assert [d["attributes"]["reference"] for d in wallet.body["data"]] == ["ref-207"]
        everything = await client.get(
            "/api/customer_payment_sources", **{"page[size]": "25", "page[number]": "400"}
        )
        assert everything.body["meta"] == {"record_count": N, "page_count": 400}
        assert len(everything.body["data"]) == 25 and "next" not in everything.body["links"]
        by_email = await client.get(
            "/api/customers",
            **{"filter[q][email_eq]": stored(handle, "customers", customers[9])["email"]},
        )
        assert [d["id"] for d in by_email.body["data"]] == [customers[9]]
        pairs: dict[tuple[int, int], int] = {}
        for n in range(N):
            key = (n % len(customers), n % len(sources))
            pairs[key] = pairs.get(key, 0) + 1
        duplicates = (await handle.stats())["duplicates"]
        assert duplicates["count"] == sum(1 for c in pairs.values() if c > 1)
        assert sum(len(p["ids"]) for p in duplicates["pairs"]) == sum(c for c in pairs.values() if c > 1)
