"""SandboxThread: the sandbox on its own loop, used from synchronous code and another loop."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from importer.sandbox.testing import SandboxThread, cps_body, fast_settings, seed_pairing

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_thread_runner_sync_helpers() -> None:
    with SandboxThread(fast_settings(customers=4)) as sandbox:
        assert sandbox.base_url.startswith("http://127.0.0.1:") and sandbox.auth_url.endswith("/oauth/token")
        assert sandbox.settings.customers == 4 and len(sandbox.store.tables["customers"]) == 4
        body = json.dumps(
            {
                "grant_type": "client_credentials",
                "client_id": sandbox.client_id,
                "client_secret": sandbox.client_secret,
            }
        ).encode()
        request = urllib.request.Request(
            sandbox.auth_url, data=body, headers={"Content-Type": "application/json"}
        )
        with NO_PROXY.open(request, timeout=10) as response:
            assert response.status == 200
        assert sandbox.stats()["tokens_issued"] == 1
        assert sandbox.set_faults(error_5xx=0.5)["faults"]["error_5xx"] == 0.5
        assert sandbox.expire_tokens() == 1
        assert [e["path"] for e in sandbox.requests_log()] == ["/oauth/token"]
        assert sandbox.records("customers")[0]["email"].endswith("@example.com")
        assert sandbox.windows_max()["token"]["POST /oauth/token"]["max"] == 1
        sandbox.reset()
        assert sandbox.requests_log() == []


def test_thread_runner_serves_a_client_on_another_loop() -> None:
    with SandboxThread(customers=3, time_scale=0.05) as sandbox:

        async def use() -> int:
            async with sandbox.handle.client() as client:
                reply = await client.post(
                    "/api/customer_payment_sources", cps_body(*seed_pairing(sandbox.handle))
                )
                return reply.status

        assert asyncio.run(use()) == 201
        assert len(sandbox.records()) == 1
