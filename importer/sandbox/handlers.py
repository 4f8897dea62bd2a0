"""Read endpoints: lists (filters, paging, sort, include, fields) and single records."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from importer.sandbox.core import SANDBOX, Sandbox
from importer.sandbox.jsonapi import json_response, not_found
from importer.sandbox.persist import Record
from importer.sandbox.query import Filter, Query, parse_query, select
from importer.sandbox.resources import SPECS
from importer.sandbox.store import CPS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _query(request: web.Request, sb: Sandbox, type_: str, *, collection: bool) -> Query:
    return parse_query(
        request.query.items(),
        SPECS[type_],
        default_size=sb.settings.page_size_default,
        max_size=sb.settings.page_size_max,
        collection=collection,
        email_case_sensitive=sb.settings.email_case_sensitive,
    )


def _default_order(sb: Sandbox, query: Query, rows: list[Record]) -> list[Record]:
    """`select` gives created_at, id order; without `sort`, `list_order` may turn it round."""
    if not query.sort and sb.settings.list_order == "newest_first":
        rows.reverse()
    return rows


def paged(request: web.Request, sb: Sandbox, type_: str, rows: list[Record], query: Query) -> dict[str, Any]:
    """One page of `rows` as a JSON:API document with meta.record_count/page_count and links."""
    count = len(rows)
    pages = math.ceil(count / query.size)
    start = (query.number - 1) * query.size
    doc = sb.renderer(request).document(type_, rows[start : start + query.size], query.include, query.fields)
    others = [(k, v) for k, v in request.query.items() if not k.startswith("page[")]
    base = f"{request.scheme}://{request.host}{request.path}"

    def link(number: int) -> str:
        return (
            f"{base}?{urlencode([*others, ('page[number]', str(number)), ('page[size]', str(query.size))])}"
        )

    links = {"first": link(1)}
    if query.number > 1:
        links["prev"] = link(min(query.number - 1, max(pages, 1)))
    if query.number < pages:
        links["next"] = link(query.number + 1)
    links["last"] = link(max(pages, 1))
    doc["meta"] = {"record_count": count, "page_count": pages}
    doc["links"] = links
    return doc


def list_handler(type_: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        sb = request.app[SANDBOX]
        query = _query(request, sb, type_, collection=True)
        rows = _default_order(sb, query, select(sb.store.tables[type_], SPECS[type_], query))
        return json_response(paged(request, sb, type_, rows, query))

    return handle


def show_handler(type_: str) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        sb = request.app[SANDBOX]
        query = _query(request, sb, type_, collection=False)
        record = sb.store.get(type_, request.match_info["id"])
        if record is None:
            raise not_found()
        return json_response(sb.renderer(request).document(type_, record, query.include, query.fields))

    return handle


async def customer_sources(request: web.Request) -> web.Response:
    """GET /api/customers/{id}/customer_payment_sources."""
    sb = request.app[SANDBOX]
    customer_id = request.match_info["id"]
    if sb.store.get("customers", customer_id) is None:
        raise not_found()
    query = _query(request, sb, CPS, collection=True)
    rows = _default_order(
        sb,
        query,
        select(sb.store.tables[CPS], SPECS[CPS], query, fixed=Filter("customer_id", "eq", customer_id)),
    )
    return json_response(paged(request, sb, CPS, rows, query))


def related_handler(rel: str) -> Handler:
    """GET /api/customer_payment_sources/{id}/<customer|payment_method|payment_source|versions>."""

    async def handle(request: web.Request) -> web.Response:
        sb = request.app[SANDBOX]
        record = sb.store.get(CPS, request.match_info["id"])
        if record is None:
            raise not_found()
        if rel == "versions":
            return json_response({"data": [], "meta": {"record_count": 0, "page_count": 0}, "links": {}})
        target = {
            "customer": ("customers", record.get("customer_id")),
            "payment_method": ("payment_methods", record.get("payment_method_id")),
            "payment_source": (record.get("payment_source_type"), record.get("payment_source_id")),
        }[rel]
        type_, id_ = target
        related = sb.store.get(type_, id_) if type_ and id_ else None
        if related is None or type_ is None:
            return json_response({"data": None})
        query = _query(request, sb, type_, collection=False)
        return json_response(sb.renderer(request).document(type_, related, query.include, query.fields))

    return handle
