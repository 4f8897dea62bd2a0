"""The aiohttp application: routes, and the gateway middleware every /api request goes through.

Order of the gateway for /api: connection_reset fault → latency → storm (429) → rate windows
(429) → bearer token (401) → Accept (406) → Content-Type (415) → error_5xx fault → handler →
X-Ratelimit-* headers → slow_response fault. /oauth/token only gets logged here (its own window
is checked in its handler); /_sandbox routes bypass everything.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiohttp import web

from importer.models import PAYMENT_SOURCE_TYPES
from importer.sandbox import admin, auth, cps, exports, handlers, imports
from importer.sandbox.core import CONTEXT, SANDBOX, RequestContext, Sandbox
from importer.sandbox.faults import drop_connection
from importer.sandbox.jsonapi import JSONAPI, ApiError, gateway_error, internal_error, too_many_requests
from importer.sandbox.ratelimit import ApiVerdict, http_date, retry_after_header
from importer.sandbox.settings import SandboxSettings
from importer.sandbox.stats import LogEntry
from importer.sandbox.store import CPS, EXPORTS, IMPORTS

CREATE_CPS = ("POST", f"/api/{CPS}")
CPS_ITEM = f"/api/{CPS}/{{id}}"


def _accepts(header: str) -> bool:
    types = {part.split(";")[0].strip().lower() for part in header.split(",")}
    return bool(types & {JSONAPI, "*/*", "application/*"})


def _check_media(request: web.Request) -> None:
    accept = request.headers.get("Accept")
    if accept and not _accepts(accept):
        raise ApiError.single(
            406,
            "Not acceptable",
            f"All requests must use the '{JSONAPI}' Accept without media type parameters. "
            f"This request specified '{accept}'.",
            "NOT_ACCEPTABLE",
        )
    if request.method in ("POST", "PATCH", "PUT") and request.content_type != JSONAPI:
        given = request.headers.get("Content-Type", "")
        raise ApiError.single(
            415,
            "Unsupported media type",
            f"All requests that create or update must use the '{JSONAPI}' Content-Type. "
            f"This request specified '{given}'.",
            "UNSUPPORTED_MEDIA_TYPE",
        )


def _http_error(exc: web.HTTPException) -> web.Response:
    codes = {404: ("Not found", "NOT_FOUND"), 405: ("Method not allowed", "METHOD_NOT_ALLOWED")}
    title, code = codes.get(exc.status, (exc.reason, "BAD_REQUEST"))
    return ApiError.single(exc.status, title, f"{exc.reason}.", code).response()


def _rate_headers(response: web.StreamResponse, verdict: ApiVerdict) -> None:
    response.headers["X-Ratelimit-Limit"] = str(verdict.limit)
    response.headers["X-Ratelimit-Interval"] = str(verdict.interval_s)
    response.headers["X-Ratelimit-Remaining"] = str(verdict.remaining)


def _too_many(verdict: ApiVerdict, retry_s: float, sb: Sandbox) -> web.Response:
    response = too_many_requests().response()
    _rate_headers(response, verdict)
    if sb.settings.retry_after:
        if sb.settings.retry_after_format == "http-date":
            # The date is measured from the Date header, so both come from this one clock.
            now = sb.wall()
            response.headers["Date"] = http_date(now)
            response.headers["Retry-After"] = retry_after_header(retry_s, http_date_at=now)
        else:
            response.headers["Retry-After"] = retry_after_header(retry_s)
    return response


async def _api(
    request: web.Request, handler: handlers.Handler, sb: Sandbox, ctx: RequestContext, template: str
) -> web.StreamResponse:
    method, ip = request.method, request.remote or "unknown"
    if sb.faults.connection_reset():
        ctx.fault, ctx.dropped = "connection_reset", True
        return drop_connection(request)
    delay = sb.faults.latency()
    if delay > 0:
        await asyncio.sleep(delay)
    now = sb.clock()
    storm = sb.faults.storm_remaining(now)
    if storm > 0:
        sb.faults.counts["storm"] += 1
        sb.stats.storm_429 += 1
        ctx.fault = "storm"
        return _too_many(sb.limits.check_api(ip, method, template, now, count=False), storm, sb)
    verdict = sb.limits.check_api(ip, method, template, now)
    if not verdict.allowed:
        sb.stats.rate_limited += 1
        ctx.rate_limited = True
        return _too_many(verdict, verdict.retry_after_s, sb)
    response: web.StreamResponse
    try:
        auth.require_token(request, sb)
        _check_media(request)
        kind = "other"
        if (method, template) == CREATE_CPS:
            kind = "create"
        elif template == CPS_ITEM and method in ("PATCH", "DELETE"):
            kind = "write"
        code = sb.faults.error_5xx(kind)
        if code is not None:
            ctx.fault = "error_5xx"
            response = internal_error().response() if code == 500 else gateway_error(code)
        else:
            response = await handler(request)
    except ApiError as exc:
        response = exc.response()
    except web.HTTPException as exc:
        response = _http_error(exc)
    if ctx.dropped:
        return response
    _rate_headers(response, verdict)
    slow = sb.faults.slow_response()
    if slow > 0:
        ctx.fault = ctx.fault or "slow_response"
        await asyncio.sleep(slow)
    return response


@web.middleware
async def gateway(request: web.Request, handler: handlers.Handler) -> web.StreamResponse:
    path = request.path
    if path.startswith("/_sandbox/"):
        return await handler(request)
    sb = request.app[SANDBOX]
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else "{unmatched}"
    ctx = request[CONTEXT] = RequestContext()
    status = 0
    try:
        if path == "/api" or path.startswith("/api/"):
            response = await _api(request, handler, sb, ctx, template)
        else:
            response = await handler(request)
    except web.HTTPException as exc:
        status = exc.status
        raise
    else:
        status = 0 if ctx.dropped else response.status
        return response
    finally:
        method = "GET" if request.method == "HEAD" else request.method
        ip = request.remote or "unknown"
        entry = LogEntry(sb.clock() - sb.started, method, template, status, ip, ctx.rate_limited, ctx.fault)
        sb.stats.record(entry)


def _routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/oauth/token", auth.token)
    for type_ in ("customers", "payment_methods", *PAYMENT_SOURCE_TYPES, CPS, IMPORTS, EXPORTS):
        r.add_get(f"/api/{type_}", handlers.list_handler(type_), allow_head=False)
        r.add_get(f"/api/{type_}/{{id}}", handlers.show_handler(type_), allow_head=False)
    r.add_get("/api/customers/{id}/customer_payment_sources", handlers.customer_sources, allow_head=False)
    for rel in ("customer", "payment_method", "payment_source", "versions"):
        r.add_get(f"/api/{CPS}/{{id}}/{rel}", handlers.related_handler(rel), allow_head=False)
    r.add_post(f"/api/{CPS}", cps.create)
    r.add_patch(f"/api/{CPS}/{{id}}", cps.update)
    r.add_delete(f"/api/{CPS}/{{id}}", cps.delete)
    r.add_post(f"/api/{IMPORTS}", imports.create)
    r.add_post(f"/api/{EXPORTS}", exports.create)
    r.add_get("/attachments/{id}/{token}", exports.download, allow_head=False)
    r.add_routes(admin.routes)


async def _close_store(app: web.Application) -> None:
    app[SANDBOX].close()


def create_app(
    settings: SandboxSettings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
) -> web.Application:
    """The sandbox as an aiohttp application (serve it with web.AppRunner, or `testing.running_sandbox`)."""
    settings = settings or SandboxSettings()
    # aiohttp's default body limit (1 MiB) is less than an import of 10,000 inputs.
    app = web.Application(middlewares=[gateway], client_max_size=settings.request_max_bytes)
    app[SANDBOX] = Sandbox(settings, clock=clock, wall=wall)
    _routes(app)
    app[exports.ATTACHMENTS] = {}
    app[exports.BASES] = {}
    app.cleanup_ctx.append(imports.worker_context)
    app.cleanup_ctx.append(exports.worker_context)
    app.on_cleanup.append(_close_store)
    return app
