"""Pure: a validated pairing plus its resolved customer id → the JSON:API create request.

No I/O, no clock, no logging: the same pairing always plans to the same request, which is what
lets a retry or a resumed run send exactly what the first attempt sent.
"""

from __future__ import annotations

from typing import Any

from importer.models import Pairing, pairing_digest
from importer.wire import ApiRequest

CPS_PATH = "/api/customer_payment_sources"
CPS_ITEM = f"{CPS_PATH}/{{id}}"  # one record's endpoint, as the rate windows count it
# Stamped into every record we create so the importer (and an auditor) can find its own records
# by `filter[q][metadata_jcont]={"importer_key": ...}`; see docs/exactly-once.md.
IMPORTER_KEY = "importer_key"


def importer_key(pairing: Pairing, customer_id: str) -> str:
    return pairing_digest(pairing.key(customer_id))


def create_body(pairing: Pairing, customer_id: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name in ("customer_token", "payment_source_token", "reference", "reference_origin"):
        value = getattr(pairing, name)
        if value:
            attributes[name] = value
    metadata = dict(pairing.metadata)
    # A row that brings its own importer_key keeps it: the column is the customer's to set.
    metadata.setdefault(IMPORTER_KEY, importer_key(pairing, customer_id))
    attributes["metadata"] = metadata

    relationships: dict[str, Any] = {"customer": {"data": {"type": "customers", "id": customer_id}}}
    if pairing.payment_source_type and pairing.payment_source_id:
        relationships["payment_source"] = {
            "data": {"type": pairing.payment_source_type, "id": pairing.payment_source_id}
        }
    if pairing.payment_method_id:
        relationships["payment_method"] = {
            "data": {"type": "payment_methods", "id": pairing.payment_method_id}
        }
    return {
        "data": {"type": "customer_payment_sources", "attributes": attributes, "relationships": relationships}
    }


def create_request(pairing: Pairing, customer_id: str) -> ApiRequest:
    return ApiRequest("POST", CPS_PATH, body=create_body(pairing, customer_id))
