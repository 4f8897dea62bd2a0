"""Writes of customer_payment_sources: POST (both request shapes), PATCH and DELETE.

POST accepts (a) `customer` + the polymorphic `payment_source` relationship, and (b) `customer`
+ optional `payment_method` + the `customer_token`/`payment_source_token` attributes.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from importer.sandbox.core import CONTEXT, SANDBOX
from importer.sandbox.faults import drop_connection
from importer.sandbox.jsonapi import ApiError, bad_param, gateway_error, json_response, not_found
from importer.sandbox.parse import expect_type, read_document, string_attributes
from importer.sandbox.store import CPS
from importer.sandbox.validation import CpsInput, build, check

TEXT_ATTRIBUTES = ("customer_token", "payment_source_token", "reference", "reference_origin")
ATTRIBUTES = frozenset((*TEXT_ATTRIBUTES, "metadata"))
RELATIONSHIPS = frozenset(("customer", "payment_method", "payment_source"))


async def create(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    doc = await read_document(request, CPS, attributes=ATTRIBUTES, relationships=RELATIONSHIPS)
    customer_id = expect_type("customer", doc.relationships.get("customer"), "customers")
    payment_method_id = expect_type(
        "payment_method", doc.relationships.get("payment_method"), "payment_methods"
    )
    if sb.faults.unauthorized(customer_id):
        request[CONTEXT].fault = "unauthorized"
        raise ApiError.single(
            401,
            "Access denied",
            "You are not authorized to perform this action on the requested resource.",
            "UNAUTHORIZED",
        )
    source = doc.relationships.get("payment_source")
    attrs = doc.attributes
    errors = string_attributes(attrs, TEXT_ATTRIBUTES)
    if errors:
        raise ApiError(422, errors)
    given = CpsInput(
        customer_id=customer_id,
        payment_method_id=payment_method_id,
        payment_source_type=source["type"] if source else None,
        payment_source_id=source["id"] if source else None,
        customer_token=attrs.get("customer_token"),
        payment_source_token=attrs.get("payment_source_token"),
        reference=attrs.get("reference"),
        reference_origin=attrs.get("reference_origin"),
        metadata=attrs.get("metadata") or {},
    )
    issues = check(sb.store, given, reject_duplicates=sb.settings.reject_duplicates)
    if issues:
        raise ApiError(422, [issue.to_error() for issue in issues])
    if sb.faults.conflict_409():
        request[CONTEXT].fault = "conflict_409"
        if not sb.settings.conflict_409_unseen:
            sb.store.create(CPS, build(sb.store, given))
            sb.stats.created[CPS] += 1
        raise ApiError.single(
            409,
            "Record not unique",
            "The performed operation violates a unique constraint. You can safely ignore this warning.",
            "RECORD_NOT_UNIQUE",
        )
    record = sb.store.create(CPS, build(sb.store, given))
    sb.stats.created[CPS] += 1
    failure = sb.faults.commit_then_fail()
    if failure is not None:
        context = request[CONTEXT]
        context.fault = "commit_then_fail"
        if failure == "drop":
            context.dropped = True
            return drop_connection(request)
        return gateway_error(502)
    return json_response(sb.renderer(request).document(CPS, record), status=201)


async def update(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    id_ = request.match_info["id"]
    if sb.store.get(CPS, id_) is None:
        raise not_found()
    doc = await read_document(request, CPS, attributes=ATTRIBUTES, relationships=frozenset(), allow_id=True)
    if doc.id != id_:
        raise bad_param(
            "Key is not included in URL",
            f"The URL does not support the key {doc.id}",
            "KEY_NOT_INCLUDED_IN_URL",
        )
    errors = string_attributes(doc.attributes, TEXT_ATTRIBUTES)
    if errors:
        raise ApiError(422, errors)
    changes: dict[str, Any] = dict(doc.attributes)
    if "metadata" in changes:
        changes["metadata"] = changes["metadata"] or {}
    record = sb.store.update(CPS, id_, changes)
    failure = _commit_then_fail(request)
    return failure or json_response(sb.renderer(request).document(CPS, record))


async def delete(request: web.Request) -> web.StreamResponse:
    sb = request.app[SANDBOX]
    id_ = request.match_info["id"]
    if sb.store.get(CPS, id_) is None:
        raise not_found()
    sb.store.delete(CPS, id_)
    sb.stats.deleted[CPS] += 1
    return _commit_then_fail(request) or web.Response(status=204)


def _commit_then_fail(request: web.Request) -> web.StreamResponse | None:
    """The PATCH or DELETE is done; with commit_then_fail_scope `writes`, its answer may be lost."""
    failure = request.app[SANDBOX].faults.commit_then_fail(write=True)
    if failure is None:
        return None
    context = request[CONTEXT]
    context.fault = "commit_then_fail"
    if failure == "drop":
        context.dropped = True
        return drop_connection(request)
    return gateway_error(502)
