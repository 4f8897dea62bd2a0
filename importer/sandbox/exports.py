"""The Exports API for customer_payment_sources and customers: POST /api/exports, its worker, and
the attachment.

An export is created `pending` with the records its `filters` match counted at once (more than
`export_max_records` is refused with a 422, the stricter reading of the CLI's 5,000 cap). The
worker moves it to `in_progress`, "writes" `export_records_per_s` records a second and ends it
`completed` with an `attachment_url`: a plain JSON array of flat records served outside /api
(no token, like a pre-signed S3 link) that expires `export_link_ttl_s` after completion and is
not renewed by reading the export again. Attachments are kept in memory only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from importer.sandbox.core import CONTEXT, SANDBOX, Sandbox
from importer.sandbox.jsonapi import ApiError, gateway_error, internal_error, json_response, validation_error
from importer.sandbox.parse import read_document
from importer.sandbox.query import parse_query, select
from importer.sandbox.resources import SPECS
from importer.sandbox.store import CPS, CUSTOMERS, EXPORTS

RESOURCE_TYPES = (CPS, CUSTOMERS)
ATTRIBUTES = frozenset(
    ("resource_type", "format", "includes", "fields", "filters", "dry_data", "reference", "reference_origin",
     "metadata")
)  # fmt: skip
ACTIVE = ("pending", "in_progress")
TICK_S = 0.05
# Flat fields of a record in an export file (relationships as `<name>_id`), by resource type.
EXPORT_FIELDS = {
    CPS: (
        "id", "created_at", "updated_at", "reference", "reference_origin", "metadata", "name",
        "customer_token", "payment_source_token", "customer_id", "payment_method_id",
        "payment_source_type", "payment_source_id",
    ),
    CUSTOMERS: (
        "id", "created_at", "updated_at", "email", "status", "reference", "reference_origin", "metadata",
    ),
}  # fmt: skip
log = logging.getLogger(__name__)


@dataclass(slots=True)
class Attachment:
    token: str
    resource_type: str
    record_ids: list[str]
    body: bytes | None = None
    expires_at: float | None = None  # sandbox clock


ATTACHMENTS: web.AppKey[dict[str, Attachment]] = web.AppKey("sandbox.export_attachments", dict)
BASES: web.AppKey[dict[str, str]] = web.AppKey("sandbox.export_bases", dict)


def _attr_error(name: str, message: str, key: str) -> dict[str, Any]:
    return validation_error(name, message, key, f"/data/attributes/{name}")


def _matching(sb: Sandbox, resource_type: str, filters: Any) -> list[str]:
    """The ids the filters match, by the same rules as `filter[q]` on a GET (e-mail case included)."""
    table = sb.store.tables[resource_type]
    if filters in (None, {}):
        return [r["id"] for r in table.ordered()]
    if not isinstance(filters, dict):
        raise ApiError(422, [_attr_error("filters", "is invalid", "invalid")])
    params = [
        (f"filter[q][{name}]", ",".join(map(str, value)) if isinstance(value, list) else str(value))
        for name, value in filters.items()
    ]
    spec = SPECS[resource_type]
    query = parse_query(
        params,
        spec,
        default_size=1,
        max_size=1,
        collection=True,
        email_case_sensitive=sb.settings.email_case_sensitive,
    )
    return [r["id"] for r in select(table, spec, query)]


async def create(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    code = sb.faults.endpoint_5xx("exports_error_5xx")
    if code is not None:
        request[CONTEXT].fault = "exports_error_5xx"
        return internal_error().response() if code == 500 else gateway_error(code)
    doc = await read_document(request, EXPORTS, attributes=ATTRIBUTES, relationships=frozenset())
    attrs = doc.attributes
    resource_type = attrs.get("resource_type")
    if not resource_type:
        raise ApiError(422, [_attr_error("resource_type", "can't be blank", "blank")])
    if resource_type not in RESOURCE_TYPES:
        raise ApiError(422, [_attr_error("resource_type", "is not included in the list", "inclusion")])
    if (attrs.get("format") or "json") != "json":
        raise ApiError(
            422, [_attr_error("format", "is not supported by the sandbox (json only)", "inclusion")]
        )
    ids = _matching(sb, resource_type, attrs.get("filters"))
    limit = sb.settings.export_max_records
    if len(ids) > limit:
        message = f"has too many records ({len(ids)}, maximum is {limit}); narrow the filters"
        raise ApiError(422, [_attr_error("filters", message, "too_many_records")])
    record = sb.store.create(
        EXPORTS,
        {
            "resource_type": resource_type,
            "format": "json",
            "status": "pending",
            "includes": attrs.get("includes") or [],
            "fields": attrs.get("fields") or ["*"],
            "filters": attrs.get("filters") or {},
            "dry_data": bool(attrs.get("dry_data")),
            "started_at": None,
            "completed_at": None,
            "interrupted_at": None,
            "records_count": len(ids),
            "processed_count": 0,
            "attachment_url": None,
            "errors_log": {},
            "reference": attrs.get("reference"),
            "reference_origin": attrs.get("reference_origin"),
            "metadata": attrs.get("metadata") or {},
        },
    )
    request.app[ATTACHMENTS][record["id"]] = Attachment(secrets.token_urlsafe(12), resource_type, ids)
    request.app[BASES][record["id"]] = f"{request.scheme}://{request.host}"
    sb.stats.created[EXPORTS] += 1
    return json_response(sb.renderer(request).document(EXPORTS, record), status=201)


def flat(record: dict[str, Any], resource_type: str = CPS) -> dict[str, Any]:
    return {name: record.get(name) for name in EXPORT_FIELDS[resource_type]}


async def download(request: web.Request) -> web.Response:
    """GET /attachments/{id}/{token}: the export file, until its link expires (then 403, as S3)."""
    sb = request.app[SANDBOX]
    attachment = request.app[ATTACHMENTS].get(request.match_info["id"])
    if attachment is None or attachment.token != request.match_info["token"] or attachment.body is None:
        return web.Response(status=404, text="NoSuchKey", content_type="text/plain")
    if attachment.expires_at is not None and sb.clock() >= attachment.expires_at:
        return web.Response(status=403, text="AccessDenied: Request has expired", content_type="text/plain")
    return web.Response(body=attachment.body, content_type="application/json")


class ExportWorker:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.sb = app[SANDBOX]
        self._budget: dict[str, float] = {}

    def tick(self, dt: float) -> None:
        table = self.sb.store.tables[EXPORTS]
        ids: set[str] = set().union(*(table.lookup("status", s) for s in ACTIVE))
        for record in sorted((table.rows[i] for i in ids), key=lambda r: (r["created_at"], r["id"])):
            self._advance(record, dt)

    def _advance(self, record: dict[str, Any], dt: float) -> None:
        store, settings = self.sb.store, self.sb.settings
        changes: dict[str, Any] = {}
        if record["status"] == "pending":
            changes = {"status": "in_progress", "started_at": store.now_iso()}
        budget = self._budget.get(record["id"], 0.0) + settings.export_records_per_s * dt
        done = min(record["records_count"], record["processed_count"] + int(budget))
        self._budget[record["id"]] = budget - (done - record["processed_count"])
        changes["processed_count"] = done
        attachment = self.app[ATTACHMENTS].get(record["id"])
        if done >= record["records_count"] or attachment is None:
            self._budget.pop(record["id"], None)
            changes.update({"status": "completed", "completed_at": store.now_iso()})
            if attachment is not None:
                kind = attachment.resource_type
                rows = [store.get(kind, i) for i in attachment.record_ids]
                attachment.body = json.dumps([flat(r, kind) for r in rows if r is not None]).encode()
                attachment.expires_at = self.sb.clock() + settings.export_link_ttl_s
                base = self.app[BASES].get(record["id"], "")
                changes["attachment_url"] = f"{base}/attachments/{record['id']}/{attachment.token}"
        store.update(EXPORTS, record["id"], changes)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            try:
                self.tick(now - last)
            except Exception:  # a bug must not stop every later export
                log.exception("sandbox.export_worker_failed")
            last = now


async def worker_context(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup_ctx: run the export worker for the app's lifetime."""
    task = asyncio.create_task(ExportWorker(app).run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
