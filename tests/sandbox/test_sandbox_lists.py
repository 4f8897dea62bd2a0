"""Lists: paging and links, filter[q] matchers, include, sparse fields, sort."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from importer.sandbox.testing import (
    SandboxClient,
    SandboxHandle,
    cps_body,
    fast_settings,
    running_sandbox,
    seed_pairing,
    stored,
)

CPS = "customer_payment_sources"


def page_of(link: str) -> tuple[int, int]:
    query = parse_qs(urlsplit(link).query)
    return int(query["page[number]"][0]), int(query["page[size]"][0])


async def test_paging_defaults_and_links(sandbox: SandboxHandle, client: SandboxClient) -> None:
    first = await client.get("/api/customers")
    assert len(first.body["data"]) == 10
    assert first.body["meta"] == {"record_count": 20, "page_count": 2}
    links = first.body["links"]
    assert set(links) == {"first", "next", "last"}
    assert links["first"].startswith(f"{sandbox.base_url}/api/customers?")
    assert (page_of(links["first"]), page_of(links["next"]), page_of(links["last"])) == (
        (1, 10),
        (2, 10),
        (2, 10),
    )
    second = await client.get(links["next"])
    assert set(second.body["links"]) == {"first", "prev", "last"}
    assert page_of(second.body["links"]["prev"]) == (1, 10)
    ids = [d["id"] for d in first.body["data"] + second.body["data"]]
    assert len(set(ids)) == 20
    seven = await client.get("/api/customers", **{"page[size]": "7", "page[number]": "3"})
    assert len(seven.body["data"]) == 6 and seven.body["meta"]["page_count"] == 3
    assert [d["id"] for d in seven.body["data"]] == ids[14:]
    beyond = await client.get("/api/customers", **{"page[number]": "9"})
    assert beyond.status == 200 and beyond.body["data"] == []


async def test_filters_survive_in_page_links(client: SandboxClient) -> None:
    reply = await client.get("/api/customers", **{"filter[q][email_start]": "a", "page[size]": "1"})
    for link in reply.body["links"].values():
        assert parse_qs(urlsplit(link).query)["filter[q][email_start]"] == ["a"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"page[size]": "26"}, "INVALID_PAGE_VALUE"),
        ({"page[size]": "0"}, "INVALID_PAGE_VALUE"),
        ({"page[number]": "x"}, "INVALID_PAGE_VALUE"),
        ({"page[offset]": "1"}, "PARAM_NOT_ALLOWED"),
        ({"filter[q][colour_eq]": "red"}, "FILTER_NOT_ALLOWED"),
        ({"filter[q][email_sounds_like]": "x"}, "FILTER_NOT_ALLOWED"),
        ({"filter[q][metadata_eq]": "x"}, "FILTER_NOT_ALLOWED"),
        ({"filter[q][metadata_jcont]": "not json"}, "INVALID_FILTER_VALUE"),
        ({"filter[email]": "x"}, "FILTER_NOT_ALLOWED"),
        ({"include": "orders"}, "INVALID_INCLUDE"),
        ({"fields[customers]": "colour"}, "INVALID_FIELD"),
        ({"sort": "colour"}, "INVALID_SORT_CRITERIA"),
        ({"foo": "bar"}, "PARAM_NOT_ALLOWED"),
    ],
)
async def test_bad_query_parameters_are_400(client: SandboxClient, params: dict[str, str], code: str) -> None:
    reply = await client.get("/api/customers", **params)
    assert reply.status == 400
    assert reply.body["errors"][0]["code"] == code and reply.body["errors"][0]["status"] == "400"


async def test_page_size_max_is_25(client: SandboxClient) -> None:
    reply = await client.get("/api/customers", **{"page[size]": "25"})
    assert reply.status == 200 and len(reply.body["data"]) == 20


async def test_customer_email_filters_match_exactly_by_default(
    sandbox: SandboxHandle, client: SandboxClient
) -> None:
    customer = next(iter(sandbox.store.tables["customers"].rows.values()))
    reply = await client.get(
        "/api/customers", **{"filter[q][email_eq]": customer["email"], "fields[customers]": "id,email"}
    )
    assert [d["id"] for d in reply.body["data"]] == [customer["id"]]
    assert reply.body["data"][0]["attributes"] == {"email": customer["email"]}
    assert "relationships" not in reply.body["data"][0]
    # email_case_sensitive=True (the default): SQL `=`, another case is another address.
    reply = await client.get("/api/customers", **{"filter[q][email_eq]": customer["email"].upper()})
    assert reply.body["data"] == []
    emails = [c["email"] for c in list(sandbox.store.tables["customers"].rows.values())[:3]]
    reply = await client.get(
        "/api/customers", **{"filter[q][email_in]": ",".join([*emails, emails[0].upper()])}
    )
    assert sorted(d["attributes"]["email"] for d in reply.body["data"]) == sorted(emails)
    reply = await client.get("/api/customers", **{"filter[q][email_eq]": "nobody@example.com"})
    assert reply.body["data"] == [] and reply.body["meta"] == {"record_count": 0, "page_count": 0}


MIXED_CASE_SEED = {
    "customers": [
        {"id": "MixedCase1", "email": "Anna.Okafor@Example.com"},
        {"id": "LowerCase1", "email": "anna.okafor@example.com"},
        {"id": "OtherCust1", "email": "bruno@example.com"},
    ]
}


@pytest.mark.parametrize(
    ("case_sensitive", "asked", "expected"),
    [
        (True, ["Anna.Okafor@Example.com"], ["MixedCase1"]),
        (True, ["ANNA.OKAFOR@EXAMPLE.COM"], []),
        (True, ["Anna.Okafor@Example.com", "anna.okafor@example.com"], ["LowerCase1", "MixedCase1"]),
        (True, ["Bruno@Example.com"], []),
        (False, ["ANNA.OKAFOR@EXAMPLE.COM"], ["LowerCase1", "MixedCase1"]),
        (False, ["Bruno@Example.com"], ["OtherCust1"]),
    ],
)
async def test_email_case_sensitive_setting(
    tmp_path: Path, case_sensitive: bool, asked: list[str], expected: list[str]
) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps(MIXED_CASE_SEED), encoding="utf-8")
    settings = fast_settings(seed_file=str(seed), email_case_sensitive=case_sensitive)
    async with running_sandbox(settings) as handle, handle.client() as api:
        for name in ("email_in", "email_eq"):
            if name == "email_eq" and len(asked) > 1:
                continue
            reply = await api.get("/api/customers", **{f"filter[q][{name}]": ",".join(asked)})
            assert sorted(d["id"] for d in reply.body["data"]) == expected


async def make_sources(sandbox: SandboxHandle, client: SandboxClient) -> list[dict[str, Any]]:
    made = []
    for n in range(6):
        customer_id, source = seed_pairing(sandbox, n % 3)
        attributes = {
            "reference": f"ref-{n}",
            "reference_origin": "odd" if n % 2 else "even",
            "payment_source_token": f"pm_{n:04d}",
            "metadata": {"n": n, "batch": {"id": "b1" if n < 3 else "b2"}},
        }
        reply = await client.post(f"/api/{CPS}", cps_body(customer_id, source, attributes=attributes))
        assert reply.status == 201
        made.append(reply.body["data"])
    return made


async def test_customer_payment_source_filters(sandbox: SandboxHandle, client: SandboxClient) -> None:
    made = await make_sources(sandbox, client)
    ids = [m["id"] for m in made]
    customer0 = stored(sandbox, CPS, ids[0])["customer_id"]
    cases: list[tuple[str, str, list[str]]] = [
        ("reference_eq", "ref-2", [ids[2]]),
        ("reference_in", "ref-1,ref-4,nope", [ids[1], ids[4]]),
        ("reference_not_eq", "ref-0", ids[1:]),
        ("reference_start", "ref-", ids),
        ("reference_origin_eq", "odd", [ids[1], ids[3], ids[5]]),
        ("payment_source_token_eq", "pm_0003", [ids[3]]),
        ("customer_id_eq", customer0, [ids[0], ids[3]]),
        ("id_eq", ids[5], [ids[5]]),
        ("id_in", f"{ids[0]},{ids[1]}", ids[:2]),
        ("metadata_jcont", '{"batch": {"id": "b2"}}', ids[3:]),
        ("metadata_jcont", '{"n": 1}', [ids[1]]),
        ("created_at_gt", "2000-01-01T00:00:00Z", ids),
        ("created_at_lt", "2000-01-01", []),
    ]
    for name, value, expected in cases:
        reply = await client.get(f"/api/{CPS}", **{f"filter[q][{name}]": value, "page[size]": "25"})
        assert reply.status == 200, (name, reply.body)
        assert sorted(d["id"] for d in reply.body["data"]) == sorted(expected), name
        assert reply.body["meta"]["record_count"] == len(expected)
    both = await client.get(
        f"/api/{CPS}", **{"filter[q][customer_id_eq]": customer0, "filter[q][reference_eq]": "ref-3"}
    )
    assert [d["id"] for d in both.body["data"]] == [ids[3]]
    method = stored(sandbox, CPS, ids[0])["payment_method_id"]
    assert method is None
    reply = await client.get(f"/api/{CPS}", **{"filter[q][payment_method_id_eq]": "XXXXXXXXXX"})
    assert reply.body["data"] == []


async def test_default_order_is_created_then_id_and_sort_param(
    sandbox: SandboxHandle, client: SandboxClient
) -> None:
    made = await make_sources(sandbox, client)
    listed = (await client.get(f"/api/{CPS}", **{"page[size]": "25"})).body["data"]
    keys = [(d["attributes"]["created_at"], d["id"]) for d in listed]
    assert keys == sorted(keys) and len(keys) == len(made)
    by_ref = await client.get(f"/api/{CPS}", sort="-reference", **{"page[size]": "25"})
    assert [d["attributes"]["reference"] for d in by_ref.body["data"]] == [
        f"ref-{n}" for n in range(5, -1, -1)
    ]


async def test_include_on_customer_payment_sources(sandbox: SandboxHandle, client: SandboxClient) -> None:
    made = await make_sources(sandbox, client)
    reply = await client.get(f"/api/{CPS}", include="customer,payment_source,payment_method")
    assert reply.status == 200
    included = {(i["type"], i["id"]) for i in reply.body["included"]}
    assert len(included) == len(reply.body["included"])  # deduplicated
    for item in reply.body["data"]:
        record = stored(sandbox, CPS, item["id"])
        rels = item["relationships"]
        assert rels["customer"]["data"] == {"type": "customers", "id": record["customer_id"]}
        source = {"type": record["payment_source_type"], "id": record["payment_source_id"]}
        assert rels["payment_source"]["data"] == source
        assert rels["payment_method"]["data"] is None
        assert "data" not in rels["versions"]
        assert ("customers", record["customer_id"]) in included and (source["type"], source["id"]) in included
    customers = {i["id"] for i in reply.body["included"] if i["type"] == "customers"}
    assert len(customers) == 3 and len(made) == 6
    one = await client.get(f"/api/{CPS}/{made[0]['id']}", include="customer")
    assert [i["type"] for i in one.body["included"]] == ["customers"]


async def test_include_customer_payment_sources_on_customers(
    sandbox: SandboxHandle, client: SandboxClient
) -> None:
    made = await make_sources(sandbox, client)
    customer_id = stored(sandbox, CPS, made[0]["id"])["customer_id"]
    reply = await client.get(f"/api/customers/{customer_id}", include="customer_payment_sources")
    linkage = reply.body["data"]["relationships"]["customer_payment_sources"]["data"]
    assert sorted(link["id"] for link in linkage) == sorted([made[0]["id"], made[3]["id"]])
    assert sorted(i["id"] for i in reply.body["included"]) == sorted(link["id"] for link in linkage)


async def test_list_order_newest_first_applies_only_without_sort() -> None:
    async with running_sandbox(fast_settings(list_order="newest_first")) as handle, handle.client() as api:
        ids = [c["id"] for c in handle.store.tables["customers"].ordered()]  # created_at, id
        unsorted = await api.get("/api/customers", **{"page[size]": "25"})
        assert [d["id"] for d in unsorted.body["data"]] == ids[::-1]
        asked = await api.get("/api/customers", **{"page[size]": "25", "sort": "created_at,id"})
        assert [d["id"] for d in asked.body["data"]] == ids
