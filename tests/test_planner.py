"""The pure request planning and look-up matching."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from importer.lookups import (
    customers_by_email,
    emails_found,
    match_emails,
    page_count,
    wallet_by_customers,
    wallet_entries,
    wallet_index,
)
from importer.models import Pairing, pairing_digest
from importer.planner import create_body, create_request

CUSTOMER = "ABCRtyUpBa"


def test_id_shape_body() -> None:
    pairing = Pairing(
        None,
        "ann@example.com",
        payment_source_type="stripe_payments",
        payment_source_id="QWERtyUpBa",
        reference="row-42",
        reference_origin="sheet",
        metadata={"batch": "b1"},
    )
    assert create_body(pairing, CUSTOMER) == {
        "data": {
            "type": "customer_payment_sources",
            "attributes": {
                "reference": "row-42",
                "reference_origin": "sheet",
                "metadata": {
                    "batch": "b1",
                    "importer_key": pairing_digest(f"id:{CUSTOMER}|stripe_payments:QWERtyUpBa"),
                },
            },
            "relationships": {
                "customer": {"data": {"type": "customers", "id": CUSTOMER}},
                "payment_source": {"data": {"type": "stripe_payments", "id": "QWERtyUpBa"}},
            },
        }
    }


def test_token_shape_body() -> None:
    pairing = Pairing(
        CUSTOMER,
        None,
        payment_source_token="pm_456",
        customer_token="cus_123",
        payment_method_id="wmBvQsARML",
    )
    body = create_body(pairing, CUSTOMER)["data"]
    assert body["attributes"] == {
        "customer_token": "cus_123",
        "payment_source_token": "pm_456",
        "metadata": {"importer_key": pairing_digest(f"id:{CUSTOMER}|token:pm_456")},
    }
    assert body["relationships"] == {
        "customer": {"data": {"type": "customers", "id": CUSTOMER}},
        "payment_method": {"data": {"type": "payment_methods", "id": "wmBvQsARML"}},
    }


def test_a_row_keeps_its_own_importer_key() -> None:
    pairing = Pairing(CUSTOMER, None, payment_source_token="pm_1", metadata={"importer_key": "mine"})
    assert create_body(pairing, CUSTOMER)["data"]["attributes"]["metadata"] == {"importer_key": "mine"}


def test_request_line_and_the_pairing_is_not_changed() -> None:
    pairing = Pairing(CUSTOMER, None, payment_source_token="pm_1", metadata={"a": 1})
    request = create_request(pairing, CUSTOMER)
    assert (request.method, request.path, request.endpoint) == (
        "POST",
        "/api/customer_payment_sources",
        "POST /api/customer_payment_sources",
    )
    assert pairing.metadata == {"a": 1}


@given(st.emails())
def test_email_query_round_trips(email: str) -> None:
    request = customers_by_email([email.lower(), "b+tag@example.com"])
    assert "[" not in request.query and "+" not in request.query  # '+' would be read as a space
    params = dict(parse_qsl(request.query))
    assert params["filter[q][email_in]"].split(",") == [email.lower(), "b+tag@example.com"]
    assert params["fields[customers]"] == "email" and params["page[size]"] == "25"


def test_wallet_query_and_paging() -> None:
    params = dict(parse_qsl(wallet_by_customers(["a", "b"], page=3).query))
    assert params == {
        "filter[q][customer_id_in]": "a,b",
        "include": "customer,payment_source",
        "fields[customer_payment_sources]": "payment_source_token,customer,payment_source",
        "sort": "created_at,id",
        "page[size]": "25",
        "page[number]": "3",
    }
    assert "page[number]" not in dict(parse_qsl(wallet_by_customers(["a"]).query))


def test_emails_are_matched_ignoring_case() -> None:
    body = {"data": [{"id": "C1", "type": "customers", "attributes": {"email": "Ann@Example.com"}}]}
    assert emails_found(body) == [("C1", "Ann@Example.com")]
    assert match_emails(["ann@EXAMPLE.com"], emails_found(body)) == {
        "ann@EXAMPLE.com": (("C1", "Ann@Example.com"),)
    }


def entry(
    id_: str, customer: str | None, source: tuple[str, str] | None = None, token: str | None = None
) -> dict[str, Any]:
    rels: dict[str, Any] = {"customer": {"links": {}}, "payment_source": {"links": {}}}
    if customer:
        rels["customer"]["data"] = {"type": "customers", "id": customer}
    if source:
        rels["payment_source"]["data"] = {"type": source[0], "id": source[1]}
    return {
        "id": id_,
        "type": "customer_payment_sources",
        "attributes": {"payment_source_token": token},
        "relationships": rels,
    }


def test_wallet_entries_become_pairing_keys() -> None:
    body = {
        "data": [
            entry("E1", "C1", ("stripe_payments", "S1")),
            entry("E2", "C2", token="pm_9"),
            entry("E3", "C1", ("stripe_payments", "S1")),
        ]
    }
    index = wallet_index(wallet_entries(body))
    assert index == {"id:C1|stripe_payments:S1": "E1", "id:C2|token:pm_9": "E2"}  # the oldest wins
    by_id = Pairing("C1", None, payment_source_type="stripe_payments", payment_source_id="S1")
    by_token = Pairing(None, "x@example.com", payment_source_token="pm_9")
    assert index[by_id.key("C1")] == "E1"
    assert index[by_token.key("C2")] == "E2"


def test_entries_without_customer_linkage_need_the_one_customer_asked_about() -> None:
    entries = wallet_entries({"data": [entry("E1", None, token="pm_1")]})
    assert wallet_index(entries) == {}
    assert wallet_index(entries, only_customer="C7") == {"id:C7|token:pm_1": "E1"}


def test_page_count() -> None:
    assert page_count({"meta": {"page_count": 3}}) == 3
    assert page_count({"meta": {}, "links": {"next": "http://x"}}) == 2
    assert page_count({"data": []}) == 1
