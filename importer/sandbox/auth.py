"""`POST /oauth/token` (client_credentials) and the bearer-token check of every /api call.

The auth endpoint's errors carry a numeric `status`, unlike the Core API's string one.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

from aiohttp import web

from importer.sandbox.core import CONTEXT, SANDBOX, Sandbox
from importer.sandbox.jsonapi import dumps, invalid_token
from importer.sandbox.ratelimit import retry_after_header
from importer.sandbox.settings import SandboxSettings

INVALID_CLIENT = {
    "title": "invalid_client",
    "detail": "Client authentication failed due to unknown client, no client authentication included, "
    "or unsupported authentication method.",
    "code": "UNAUTHORIZED",
    "status": 401,
}
UNSUPPORTED_GRANT = {
    "title": "unsupported_grant_type",
    "detail": "The authorization grant type is not supported by the authorization server.",
    "code": "BAD_REQUEST",
    "status": 400,
}
TOO_MANY = {
    "title": "Too many requests",
    "detail": "The request was not accepted because you hit one of the rate limits",
    "code": "TOO_MANY_REQUESTS",
    "status": 429,
}


def _answer(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(text=dumps(body), status=status, content_type="application/json", headers=headers)


async def _credentials(request: web.Request) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if request.content_type == "application/x-www-form-urlencoded":
        fields.update((k, v) for k, v in (await request.post()).items() if isinstance(v, str))
    else:
        text = await request.text()
        try:
            parsed = json.loads(text) if text.strip() else {}
        except ValueError:
            parsed = {}
        if isinstance(parsed, dict):
            fields.update(parsed)
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):  # RFC 6749 §2.3.1 client authentication
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            user = password = ""
        fields.setdefault("client_id", user)
        fields.setdefault("client_secret", password)
    return fields


async def token(request: web.Request) -> web.Response:
    sb = request.app[SANDBOX]
    settings = sb.settings
    decision = sb.limits.check_token(request.remote or "unknown", sb.clock())
    if not decision.allowed:
        sb.stats.rate_limited += 1
        request[CONTEXT].rate_limited = True
        headers = (
            {"Retry-After": retry_after_header(decision.retry_after_s)} if settings.retry_after else None
        )
        return _answer({"errors": [TOO_MANY]}, 429, headers)
    fields = await _credentials(request)
    if fields.get("grant_type") != "client_credentials":
        return _answer({"errors": [UNSUPPORTED_GRANT]}, 400)
    if fields.get("client_id") != settings.client_id or fields.get("client_secret") != settings.client_secret:
        return _answer({"errors": [INVALID_CLIENT]}, 401)
    access_token, created = sb.store.issue_token(settings.token_ttl_s, token_claims(settings))
    sb.stats.tokens_issued += 1
    return _answer(
        {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": math.ceil(settings.token_ttl_s),
            "scope": fields.get("scope") or settings.scope,
            "created_at": int(created),
        },
        200,
    )


def token_claims(settings: SandboxSettings) -> dict[str, Any]:
    """What Commerce Layer puts in an integration token's payload (shared/commercelayer-api.md §9)."""
    return {
        "organization": {"slug": settings.organization_slug, "id": settings.organization_id},
        "application": {"kind": "integration", "public": False},
        "test": settings.env == "test",
    }


def require_token(request: web.Request, sb: Sandbox) -> None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip() or not sb.store.token_valid(value.strip()):
        raise invalid_token()
