"""The Imports API for customer_payment_sources: POST /api/imports, and the worker that runs them.

An import is created `pending`; the worker (one asyncio task) moves it to `in_progress`, works
through its inputs at `import_rows_per_s` rows a second, and ends it `completed`, or
`interrupted` once `errors_count` exceeds `import_error_threshold` of `inputs_size` (unless
`skip_errors`). `errors_log` is keyed by the input's 0-based index as a string.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from importer.sandbox.core import CONTEXT, SANDBOX, Sandbox
from importer.sandbox.faults import drop_connection
from importer.sandbox.jsonapi import ApiError, gateway_error, internal_error, json_response, validation_error
from importer.sandbox.parse import read_document
from importer.sandbox.store import CPS, IMPORTS
from importer.sandbox.validation import CpsInput, build, check

RESOURCE_TYPES = ("customer_payment_sources",)
FORMATS = ("json", "csv")
ATTRIBUTES = frozenset(
    (
        "resource_type", "format", "parent_resource_id", "inputs", "skip_errors", "cleanup_records",
        "reference", "reference_origin", "metadata",
    )
)  # fmt: skip
INPUT_KEYS = frozenset(
    (
        "customer_id", "payment_method_id", "customer_token", "payment_source_token", "payment_source_type",
        "payment_source_id", "reference", "reference_origin", "metadata",
    )
)  # fmt: skip
ACTIVE = ("pending", "in_progress")
TICK_S = 0.05
log = logging.getLogger(__name__)


def _attr_error(name: str, message: str, key: str, **meta: Any) -> dict[str, Any]:
    body = validation_error(name, message, key, f"/data/attributes/{name}")
    body["meta"].update(meta)
    return body


def _inputs(attrs: dict[str, Any], fmt: str) -> list[dict[str, Any]]:
    raw = attrs.get("inputs")
    if raw is None or raw == [] or raw == "":
        raise ApiError(422, [_attr_error("inputs", "can't be blank", "blank")])
    if fmt == "csv" and isinstance(raw, str):
        rows = list(csv.DictReader(io.StringIO(raw)))
        return [{k: (v if v != "" else None) for k, v in row.items() if k is not None} for row in rows]
    if fmt == "json" and isinstance(raw, list) and all(isinstance(row, dict) for row in raw):
        return raw
    raise ApiError(422, [_attr_error("inputs", "is invalid", "invalid")])


async def create(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    code = sb.faults.endpoint_5xx("imports_error_5xx")
    if code is not None:
        request[CONTEXT].fault = "imports_error_5xx"
        return internal_error().response() if code == 500 else gateway_error(code)
    doc = await read_document(request, IMPORTS, attributes=ATTRIBUTES, relationships=frozenset())
    attrs = doc.attributes
    resource_type, fmt = attrs.get("resource_type"), attrs.get("format") or "json"
    if not resource_type:
        raise ApiError(422, [_attr_error("resource_type", "can't be blank", "blank")])
    if resource_type not in RESOURCE_TYPES:
        raise ApiError(422, [_attr_error("resource_type", "is not included in the list", "inclusion")])
    if fmt not in FORMATS:
        raise ApiError(422, [_attr_error("format", "is not included in the list", "inclusion")])
    inputs = _inputs(attrs, fmt)
    limit = sb.settings.import_max_inputs
    if len(inputs) > limit:
        message = f"is too long (maximum is {limit} elements)"
        raise ApiError(422, [_attr_error("inputs", message, "too_long", count=limit)])
    table = sb.store.tables[IMPORTS]
    running = sum(len(table.lookup("status", s)) for s in ACTIVE)
    if running >= sb.settings.max_running_imports:
        message = f"has too many imports in progress (maximum is {sb.settings.max_running_imports})"
        raise ApiError(422, [validation_error("base", message, "too_many_imports", "/data")])
    record = sb.store.create(
        IMPORTS,
        {
            "resource_type": resource_type,
            "format": fmt,
            "parent_resource_id": attrs.get("parent_resource_id"),
            "status": "pending",
            "started_at": None,
            "completed_at": None,
            "interrupted_at": None,
            "inputs_size": len(inputs),
            "errors_count": 0,
            "warnings_count": 0,
            "processed_count": 0,
            "destroyed_count": 0,
            "errors_log": {},
            "warnings_log": {},
            "skip_errors": bool(attrs.get("skip_errors")),
            "attachment_url": None,
            "reference": attrs.get("reference"),
            "reference_origin": attrs.get("reference_origin"),
            "metadata": attrs.get("metadata") or {},
        },
    )
    sb.store.save_inputs(record["id"], inputs)
    sb.stats.created[IMPORTS] += 1
    lost = sb.faults.imports_lost_answer()
    if lost is not None:  # the import exists, its answer never arrives
        context = request[CONTEXT]
        context.fault = "imports_lost_answer"
        if lost == "drop":
            context.dropped = True
            return drop_connection(request)
        return gateway_error(502)
    return json_response(sb.renderer(request).document(IMPORTS, record), status=201)


def row_input(row: dict[str, Any]) -> tuple[CpsInput | None, dict[str, list[str]]]:
    """An import row as a CpsInput, or the row's own errors (unknown keys, bad metadata)."""
    errors = {key: ["is not a valid attribute"] for key in row if key not in INPUT_KEYS}
    metadata = row.get("metadata") or {}
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            metadata = None
    if not isinstance(metadata, dict):
        errors["metadata"] = ["is invalid"]
    if errors or not isinstance(metadata, dict):
        return None, errors
    text = {k: (str(v) if v is not None else None) for k, v in row.items() if k != "metadata"}
    return CpsInput(
        customer_id=text.get("customer_id"),
        payment_method_id=text.get("payment_method_id"),
        payment_source_type=text.get("payment_source_type"),
        payment_source_id=text.get("payment_source_id"),
        customer_token=text.get("customer_token"),
        payment_source_token=text.get("payment_source_token"),
        reference=text.get("reference"),
        reference_origin=text.get("reference_origin"),
        metadata=metadata,
    ), {}


class ImportWorker:
    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self._budget: dict[str, float] = {}

    def tick(self, dt: float) -> None:
        table = self.sb.store.tables[IMPORTS]
        ids: set[str] = set().union(*(table.lookup("status", s) for s in ACTIVE))
        for record in sorted((table.rows[i] for i in ids), key=lambda r: (r["created_at"], r["id"])):
            self._advance(record, dt)

    def _log_key(self, import_id: str, index: int) -> str:
        """The input's 0-based index, or (`import_errors_log_keys: opaque`) a key a client
        cannot map back to an input: the real key form is unconfirmed."""
        if self.sb.settings.import_errors_log_keys == "opaque":
            return hashlib.sha256(f"{import_id}:{index}".encode()).hexdigest()[:12]
        return str(index)

    def _advance(self, record: dict[str, Any], dt: float) -> None:
        store, settings = self.sb.store, self.sb.settings
        changes: dict[str, Any] = {}
        if record["status"] == "pending":
            changes = {"status": "in_progress", "started_at": store.now_iso()}
        budget = self._budget.get(record["id"], 0.0) + settings.import_rows_per_s * dt
        inputs = store.import_inputs.get(record["id"], [])
        done = record["processed_count"] + record["errors_count"]
        processed, failed = record["processed_count"], record["errors_count"]
        errors_log = record["errors_log"]
        status = None
        while budget >= 1 and done < len(inputs):
            budget -= 1
            given, row_errors = row_input(inputs[done])
            if given is not None:
                issues = check(store, given, reject_duplicates=settings.reject_duplicates)
                for issue in issues:
                    row_errors.setdefault(issue.field, []).append(issue.message)
            if row_errors or given is None:
                if errors_log is record["errors_log"]:
                    errors_log = dict(errors_log)  # copy on write: rendered records stay as they were
                errors_log[self._log_key(record["id"], done)] = row_errors
                failed += 1
            else:
                store.create(CPS, build(store, given))
                self.sb.stats.created[CPS] += 1
                processed += 1
            done += 1
            if not record["skip_errors"] and failed > settings.import_error_threshold * record["inputs_size"]:
                status = "interrupted"
                break
        self._budget[record["id"]] = budget
        if status is None and done >= len(inputs):
            status = "completed"
        if status is not None:
            changes.update({"status": status, f"{status}_at": store.now_iso()})
            self._budget.pop(record["id"], None)
        if changes or processed != record["processed_count"] or failed != record["errors_count"]:
            changes.update({"processed_count": processed, "errors_count": failed, "errors_log": errors_log})
            store.update(IMPORTS, record["id"], changes)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            try:
                self.tick(now - last)
            except Exception:  # a bug must not stop every later import; say so once per tick
                log.exception("sandbox.import_worker_failed")
            last = now


async def worker_context(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup_ctx: run the import worker for the app's lifetime."""
    task = asyncio.create_task(ImportWorker(app[SANDBOX]).run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
