"""POST /api/customer_payment_sources (both shapes), its 422/400s, duplicates, PATCH and DELETE."""

from __future__ import annotations

import re
from typing import Any

from importer.sandbox.testing import (
    SandboxClient,
    SandboxHandle,
    cps_body,
    running_sandbox,
    seed_pairing,
    stored,
)

CPS = "customer_payment_sources"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body["errors"]) == 1, body
    return dict(body["errors"][0])


async def test_create_with_a_payment_source(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, source = seed_pairing(sandbox)
    attributes = {"reference": "row-1", "reference_origin": "sheet", "metadata": {"batch": "b1"}}
    reply = await client.post(f"/api/{CPS}", cps_body(customer_id, source, attributes=attributes))
    assert reply.status == 201
    data = reply.body["data"]
    base = f"{sandbox.base_url}/api/{CPS}/{data['id']}"
    assert re.match(r"^[A-Za-z0-9]{10}$", data["id"]) and data["type"] == CPS
    assert data["links"] == {"self": base}
    attrs = data["attributes"]
    assert attrs["name"] == stored(sandbox, *source)["name"]
    assert (attrs["reference"], attrs["reference_origin"], attrs["metadata"]) == (
        "row-1",
        "sheet",
        {"batch": "b1"},
    )
    assert (attrs["customer_token"], attrs["payment_source_token"]) == (None, None)
    assert STAMP.match(attrs["created_at"]) and attrs["created_at"] == attrs["updated_at"]
    assert data["relationships"]["customer"] == {
        "links": {"self": f"{base}/relationships/customer", "related": f"{base}/customer"}
    }
    assert all("data" not in rel for rel in data["relationships"].values())
    assert data["meta"] == {"mode": "test"}
    record = stored(sandbox, CPS, data["id"])
    assert (record["customer_id"], record["payment_source_type"], record["payment_source_id"]) == (
        customer_id,
        *source,
    )


async def test_create_with_tokens(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, _ = seed_pairing(sandbox)
    method_id = next(iter(sandbox.store.tables["payment_methods"].rows))
    body = cps_body(
        customer_id,
        payment_method_id=method_id,
        attributes={"customer_token": "cus_123", "payment_source_token": "pm_4567"},
    )
    reply = await client.post(f"/api/{CPS}", body)
    assert reply.status == 201
    attrs = reply.body["data"]["attributes"]
    assert (attrs["name"], attrs["customer_token"], attrs["payment_source_token"]) == (
        "XXXX-XXXX-XXXX-4567",
        "cus_123",
        "pm_4567",
    )
    bare = await client.post(f"/api/{CPS}", cps_body(customer_id))  # the docs' minimal example
    assert bare.status == 201 and bare.body["data"]["attributes"]["name"] is None


async def test_missing_customer_is_blank(sandbox: SandboxHandle, client: SandboxClient) -> None:
    _, source = seed_pairing(sandbox)
    reply = await client.post(f"/api/{CPS}", cps_body(None, source))
    assert reply.status == 422
    assert only_error(reply.body) == {
        "title": "can't be blank",
        "detail": "customer - can't be blank",
        "code": "VALIDATION_ERROR",
        "source": {"pointer": "/data/relationships/customer"},
        "status": "422",
        "meta": {"error": "blank"},
    }


async def test_unknown_related_ids_must_exist(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, source = seed_pairing(sandbox)
    reply = await client.post(f"/api/{CPS}", cps_body("XXXXXXXXXX", source))
    assert only_error(reply.body) == {
        "title": "must exist",
        "detail": "customer - must exist",
        "code": "VALIDATION_ERROR",
        "source": {"pointer": "/data/relationships/customer"},
        "status": "422",
        "meta": {"error": "required"},
    }
    reply = await client.post(
        f"/api/{CPS}", cps_body(customer_id, (source[0], "XXXXXXXXXX"), payment_method_id="YYYYYYYYYY")
    )
    assert reply.status == 422
    details = sorted(e["detail"] for e in reply.body["errors"])
    assert details == ["payment_method - must exist", "payment_source - must exist"]
    assert {e["meta"]["error"] for e in reply.body["errors"]} == {"required"}
    assert sandbox.store.tables[CPS].rows == {}


async def test_payment_source_type_outside_the_ten(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, source = seed_pairing(sandbox)
    reply = await client.post(f"/api/{CPS}", cps_body(customer_id, ("payment_sources", source[1])))
    error = only_error(reply.body)
    assert reply.status == 422 and error["source"] == {
        "pointer": "/data/relationships/payment_source/data/type"
    }
    assert error["meta"] == {"error": "inclusion", "value": "payment_sources"}


async def test_malformed_documents_are_400(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, source = seed_pairing(sandbox)
    good = cps_body(customer_id, source)
    cases: list[tuple[Any, str, str | None]] = [
        ({"data": {**good["data"], "type": "customers"}}, "INVALID_RESOURCE", "/data/type"),
        (
            {"data": {**good["data"], "attributes": {"colour": "red"}}},
            "PARAM_NOT_ALLOWED",
            "/data/attributes/colour",
        ),
        (
            {"data": {**good["data"], "attributes": {"name": "x"}}},
            "PARAM_NOT_ALLOWED",
            "/data/attributes/name",
        ),
        ({"data": {**good["data"], "id": "ABCDEFGHIJ"}}, "PARAM_NOT_ALLOWED", "/data/id"),
        ({"nodata": 1}, "PARAM_MISSING", None),
        (
            {
                "data": {
                    **good["data"],
                    "relationships": {"customer": {"data": {"type": "users", "id": customer_id}}},
                }
            },
            "TYPE_MISMATCH",
            "/data/relationships/customer/data/type",
        ),
        (
            {"data": {**good["data"], "relationships": {"order": {"data": {"type": "orders", "id": "x"}}}}},
            "PARAM_NOT_ALLOWED",
            "/data/relationships/order",
        ),
    ]
    for body, code, pointer in cases:
        reply = await client.post(f"/api/{CPS}", body)
        error = only_error(reply.body)
        assert (reply.status, error["code"], error["status"]) == (400, code, "400"), body
        assert error.get("source", {}).get("pointer") == pointer
    reply = await client.request("POST", f"/api/{CPS}", json=None, headers={})
    assert reply.status == 400
    reply = await client.post(f"/api/{CPS}", cps_body(customer_id, source, attributes={"metadata": "x"}))
    assert reply.status == 422 and only_error(reply.body)["source"] == {
        "pointer": "/data/attributes/metadata"
    }
    assert sandbox.store.tables[CPS].rows == {}


async def test_duplicates_are_accepted_by_default(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, source = seed_pairing(sandbox)
    first = await client.post(f"/api/{CPS}", cps_body(customer_id, source))
    second = await client.post(f"/api/{CPS}", cps_body(customer_id, source))
    assert (first.status, second.status) == (201, 201)
    stats = await sandbox.stats()
    assert stats["duplicates"]["count"] == 1
    (pair,) = stats["duplicates"]["pairs"]
    assert (pair["customer_id"], pair["payment_source"]) == (customer_id, f"{source[0]}:{source[1]}")
    assert sorted(pair["ids"]) == sorted([first.body["data"]["id"], second.body["data"]["id"]])


async def test_reject_duplicates_setting() -> None:
    async with running_sandbox(customers=3, reject_duplicates=True) as handle, handle.client() as client:
        customer_id, source = seed_pairing(handle)
        assert (await client.post(f"/api/{CPS}", cps_body(customer_id, source))).status == 201
        reply = await client.post(f"/api/{CPS}", cps_body(customer_id, source))
        assert reply.status == 422
        assert only_error(reply.body) == {
            "title": "has already been taken",
            "detail": "payment_source - has already been taken",
            "code": "VALIDATION_ERROR",
            "source": {"pointer": "/data/relationships/payment_source"},
            "status": "422",
            "meta": {"error": "taken"},
        }
        tokens = {"payment_source_token": "pm_same"}
        assert (await client.post(f"/api/{CPS}", cps_body(customer_id, attributes=tokens))).status == 201
        reply = await client.post(f"/api/{CPS}", cps_body(customer_id, attributes=tokens))
        error = only_error(reply.body)
        assert error["detail"] == "payment_source_token - has already been taken"
        assert error["meta"] == {"error": "taken", "value": "pm_same"}
        assert (await handle.stats())["duplicates"]["count"] == 0


async def test_patch_and_delete(sandbox: SandboxHandle, client: SandboxClient) -> None:
    customer_id, source = seed_pairing(sandbox)
    created = (await client.post(f"/api/{CPS}", cps_body(customer_id, source))).body["data"]
    patch = {
        "data": {"type": CPS, "id": created["id"], "attributes": {"reference": "new", "metadata": {"k": 1}}}
    }
    reply = await client.request("PATCH", f"/api/{CPS}/{created['id']}", json=patch)
    assert reply.status == 200 and reply.body["data"]["attributes"]["reference"] == "new"
    mismatch = {"data": {**patch["data"], "id": "OTHERIDXXX"}}
    reply = await client.request("PATCH", f"/api/{CPS}/{created['id']}", json=mismatch)
    assert reply.status == 400 and reply.body["errors"][0]["code"] == "KEY_NOT_INCLUDED_IN_URL"
    assert (await client.request("DELETE", f"/api/{CPS}/{created['id']}")).status == 204
    assert (await client.get(f"/api/{CPS}/{created['id']}")).status == 404
    assert (await client.request("DELETE", f"/api/{CPS}/{created['id']}")).status == 404
