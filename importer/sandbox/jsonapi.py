"""JSON:API bodies: error objects, the ApiError exception, and vnd.api+json responses."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

JSONAPI = "application/vnd.api+json"


def dumps(data: object) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def error(
    status: int,
    title: str,
    detail: str,
    code: str,
    *,
    pointer: str | None = None,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One error object; `status` is a string, as the Core API sends it."""
    body: dict[str, Any] = {"title": title, "detail": detail, "code": code}
    if pointer is not None:
        body["source"] = {"pointer": pointer}
    body["status"] = str(status)
    if meta is not None:
        body["meta"] = meta
    return body


def validation_error(field: str, message: str, key: str, pointer: str, value: Any = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"error": key}
    if value is not None:
        meta["value"] = value
    return error(422, message, f"{field} - {message}", "VALIDATION_ERROR", pointer=pointer, meta=meta)


class ApiError(Exception):
    """Raised by handlers; the middleware turns it into a JSON:API errors response."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(status, errors)
        self.status = status
        self.errors = errors

    @classmethod
    def single(cls, status: int, title: str, detail: str, code: str, **kw: Any) -> ApiError:
        return cls(status, [error(status, title, detail, code, **kw)])

    def response(self) -> web.Response:
        return json_response({"errors": self.errors}, status=self.status)


def json_response(body: object, status: int = 200) -> web.Response:
    return web.Response(text=dumps(body), status=status, content_type=JSONAPI, charset="utf-8")


def not_found() -> ApiError:
    return ApiError.single(
        404,
        "Record not found",
        "The requested resource was not found. Please double-check the resource id.",
        "RECORD_NOT_FOUND",
    )


def bad_param(title: str, detail: str, code: str, pointer: str | None = None) -> ApiError:
    return ApiError.single(400, title, detail, code, pointer=pointer)


def invalid_token() -> ApiError:
    return ApiError.single(401, "Invalid token", "The access token you provided is invalid.", "INVALID_TOKEN")


def too_many_requests() -> ApiError:
    return ApiError.single(
        429,
        "Too many requests",
        "The request was not accepted because you hit one of the rate limits",
        "TOO_MANY_REQUESTS",
    )


def internal_error() -> ApiError:
    return ApiError.single(
        500, "Internal server error", "We're sorry, but something went wrong.", "INTERNAL_SERVER_ERROR"
    )


def gateway_error(status: int) -> web.Response:
    """502/503 come from the edge in front of the API: an HTML page, not JSON:API."""
    reason = {502: "Bad Gateway", 503: "Service Unavailable"}[status]
    html = (
        f"<html><head><title>{status} {reason}</title></head><body><h1>{status} {reason}</h1></body></html>"
    )
    return web.Response(text=html, status=status, content_type="text/html")
