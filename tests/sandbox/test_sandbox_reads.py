"""Media types, every collection's list and show, 404s, and the related endpoints."""

from __future__ import annotations

import re

import pytest

from importer.models import PAYMENT_SOURCE_TYPES
from importer.sandbox.seed import CARD_TYPES
from importer.sandbox.testing import SandboxClient, SandboxHandle, cps_body, seed_pairing

ID = re.compile(r"^[A-Za-z0-9]{10}$")
NOT_FOUND = {
    "errors": [
        {
            "title": "Record not found",
            "detail": "The requested resource was not found. Please double-check the resource id.",
            "code": "RECORD_NOT_FOUND",
            "status": "404",
        }
    ]
}
COLLECTIONS = ("customers", "payment_methods", *PAYMENT_SOURCE_TYPES, "customer_payment_sources", "imports")


@pytest.mark.parametrize("accept", ["application/vnd.api+json", "*/*", None, "application/json, */*;q=0.1"])
async def test_accepted_accept_headers(client: SandboxClient, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {"Accept": ""}
    assert (await client.request("GET", "/api/customers", headers=headers)).status == 200


async def test_wrong_accept_is_406_and_wrong_content_type_is_415(
    sandbox: SandboxHandle, client: SandboxClient
) -> None:
    reply = await client.request("GET", "/api/customers", headers={"Accept": "application/json"})
    assert reply.status == 406
    assert reply.body["errors"][0]["code"] == "NOT_ACCEPTABLE" and reply.body["errors"][0]["status"] == "406"
    customer_id, source = seed_pairing(sandbox)
    reply = await client.request(
        "POST",
        "/api/customer_payment_sources",
        json=cps_body(customer_id, source),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 415 and reply.body["errors"][0]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert sandbox.store.tables["customer_payment_sources"].rows == {}


@pytest.mark.parametrize("type_", COLLECTIONS)
async def test_every_collection_lists_and_shows(
    sandbox: SandboxHandle, client: SandboxClient, type_: str
) -> None:
    listed = await client.get(f"/api/{type_}")
    assert listed.status == 200
    table = sandbox.store.tables[type_]
    assert listed.body["meta"]["record_count"] == len(table)
    for item in listed.body["data"]:
        assert item["type"] == type_ and ID.match(item["id"])
        assert item["links"]["self"] == f"{sandbox.base_url}/api/{type_}/{item['id']}"
        assert item["meta"] == {"mode": "test"}
        shown = await client.get(f"/api/{type_}/{item['id']}")
        assert shown.status == 200 and shown.body["data"] == item
    missing = await client.get(f"/api/{type_}/XXXXXXXXXX")
    assert missing.status == 404 and missing.body == NOT_FOUND


async def test_seed_records_look_like_the_real_ones(client: SandboxClient) -> None:
    methods = (await client.get("/api/payment_methods", **{"page[size]": "25"})).body["data"]
    assert sorted(m["attributes"]["payment_source_type"] for m in methods) == sorted(PAYMENT_SOURCE_TYPES)
    for type_ in PAYMENT_SOURCE_TYPES:
        for source in (await client.get(f"/api/{type_}")).body["data"]:
            name = source["attributes"]["name"]
            assert bool(re.match(r"^XXXX-XXXX-XXXX-\d{4}$", name)) == (type_ in CARD_TYPES), name
    customer = (await client.get("/api/customers")).body["data"][0]
    assert re.match(r"^[a-z]+\.[a-z]+\d+@example\.com$", customer["attributes"]["email"])


async def test_related_endpoints(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, source = seed_pairing(sandbox)
    method_id = next(
        r["id"]
        for r in sandbox.store.tables["payment_methods"].rows.values()
        if r["payment_source_type"] == source[0]
    )
    created = await client.post(
        "/api/customer_payment_sources", cps_body(customer_id, source, payment_method_id=method_id)
    )
    cps_id = created.body["data"]["id"]
    related = created.body["data"]["relationships"]
    assert set(related) == {"customer", "payment_method", "payment_source", "versions"}
    for rel, (type_, id_) in {
        "customer": ("customers", customer_id),
        "payment_method": ("payment_methods", method_id),
        "payment_source": source,
    }.items():
        reply = await client.get(related[rel]["links"]["related"])
        assert reply.status == 200 and (reply.body["data"]["type"], reply.body["data"]["id"]) == (type_, id_)
    versions = await client.get(f"/api/customer_payment_sources/{cps_id}/versions")
    assert versions.status == 200 and versions.body["data"] == []
    wallet = await client.get(f"/api/customers/{customer_id}/customer_payment_sources")
    assert [d["id"] for d in wallet.body["data"]] == [cps_id]
    assert (await client.get("/api/customers/XXXXXXXXXX/customer_payment_sources")).status == 404


async def test_unknown_routes_and_methods_answer_json_api(client: SandboxClient) -> None:
    reply = await client.get("/api/orders")
    assert reply.status == 404 and reply.body["errors"][0]["status"] == "404"
    reply = await client.request("DELETE", "/api/customers")
    assert reply.status == 405 and reply.body["errors"][0]["code"] == "METHOD_NOT_ALLOWED"
