"""Inspection and control routes under /_sandbox: no auth, no rate limit, plain JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from aiohttp import web

from importer.sandbox.core import SANDBOX, Sandbox
from importer.sandbox.settings import FAULT_KEYS
from importer.sandbox.store import RESOURCE_TYPES

routes = web.RouteTableDef()


def _json(body: object, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


def _faults(sb: Sandbox) -> dict[str, Any]:
    settings = asdict(sb.settings)
    return {
        "faults": {key: settings[key] for key in FAULT_KEYS},
        "storm_remaining_s": round(sb.faults.storm_remaining(sb.clock()), 3),
    }


@routes.get("/_sandbox/stats")
async def stats(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    duplicates = sb.store.duplicates()
    body = sb.stats.to_json()
    body["duplicates"] = {"count": len(duplicates), "pairs": duplicates}
    body["records"] = {t: len(table) for t, table in sb.store.tables.items()}
    return _json(body)


@routes.get("/_sandbox/records")
async def records(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    type_ = request.query.get("type", "")
    if type_ not in RESOURCE_TYPES:
        return _json({"error": f"type must be one of {', '.join(RESOURCE_TYPES)}"}, 400)
    rows = list(sb.store.tables[type_].ordered())
    return _json({"type": type_, "count": len(rows), "records": rows})


@routes.get("/_sandbox/requests")
async def requests(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    entries = [entry.to_json() for entry in sb.stats.log]
    return _json({"total": sb.stats.log_total, "kept": len(entries), "requests": entries})


@routes.post("/_sandbox/reset")
async def reset(request: web.Request) -> web.Response:
    request.app[SANDBOX].reset()
    return _json({"reset": True})


@routes.get("/_sandbox/faults")
async def show_faults(request: web.Request) -> web.Response:
    return _json(_faults(request.app[SANDBOX]))


@routes.post("/_sandbox/faults")
async def set_faults(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    try:
        changes = json.loads(await request.text() or "{}")
    except ValueError:
        changes = None
    if not isinstance(changes, dict):
        return _json({"error": "the body must be a JSON object of fault settings"}, 400)
    try:
        sb.set_faults(changes)
    except ValueError as exc:
        return _json({"error": str(exc)}, 400)
    return _json(_faults(sb))


@routes.post("/_sandbox/tokens/expire")
async def expire_tokens(request: web.Request) -> web.Response:
    return _json({"expired": request.app[SANDBOX].store.expire_tokens()})


@routes.get("/_sandbox/windows/max")
async def windows_max(request: web.Request) -> web.Response:
    return _json(request.app[SANDBOX].limits.max_windows())


@routes.post("/_sandbox/windows/reset")
async def windows_reset(request: web.Request) -> web.Response:
    # Tests that need fresh windows ask for them instead of sleeping until the windows slide,
    # which a loaded machine can stretch; nothing else (records, stats, tokens) changes.
    sb = request.app[SANDBOX]
    return _json({"windows_reset": sb.limits.limiter.forget_requests(sb.clock())})


@routes.get("/_sandbox/settings")
async def settings(request: web.Request) -> web.Response:
    values = asdict(request.app[SANDBOX].settings)
    values.pop("client_secret")
    return _json(values)
