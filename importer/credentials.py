"""The credentials a command needs, and `commercelayer.base_url` when only the token can name it.

Kept apart from the pipeline's wiring: `run` and `undo` both check credentials, and deriving the
API's address from an access token is one rule (Commerce Layer's js-auth does the same).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import structlog

from importer.config import Settings, is_loopback
from importer.errors import ConfigError, RunAborted

log = structlog.get_logger("importer")


def require_credentials(settings: Settings) -> None:
    """client_id and client_secret; base_url may be left out: the access token names it."""
    cl = settings.commercelayer
    missing = [
        name
        for name, value in (
            ("client_id", cl.client_id),
            ("client_secret", cl.client_secret),
        )
        if not value
    ]
    if missing:
        keys = ", ".join(f"commercelayer.{m}" for m in missing)
        envs = ", ".join(f"CL_{m.upper()}" for m in missing)
        raise ConfigError(f"{keys} not set; set them in the config file or export {envs}")


def with_derived_base_url(settings: Settings) -> Settings:
    """`commercelayer.base_url` unset: take it from the access token's organization.slug, as
    Commerce Layer's js-auth does (`https://{slug}.commercelayer.io`). One token request, before
    the journal is read (the journal keys pairings by API). Exit 3 when no token can be had."""
    from importer.preflight import fetch_token

    try:
        token = asyncio.run(fetch_token(settings))
    except RunAborted as exc:
        raise RunAborted(f"{exc}; nothing was read or sent") from None
    derived = settings_for_token(settings, token)
    log.info("config.base_url_derived", base_url=derived.commercelayer.base_url)
    return derived


def settings_for_token(settings: Settings, token: str) -> Settings:
    """The settings with `commercelayer.base_url` taken from the token (pure; ConfigError when
    the token names no organization, or when the token endpoint is local)."""
    from importer.identity import core_api_base_url, decode_claims

    claims = decode_claims(token)
    slug = claims.organization_slug if claims is not None else None
    if not slug:
        raise ConfigError(
            "commercelayer.base_url is not set and the access token names no organization; "
            "set commercelayer.base_url or export CL_BASE_URL=https://yourdomain.commercelayer.io"
        )
    url = core_api_base_url(slug)
    auth_host = urlsplit(settings.commercelayer.auth_url).hostname or ""
    if is_loopback(auth_host):
        # A local token endpoint (the sandbox) issues tokens no real API takes: never send one
        # (or anything else) to a derived public address.
        raise ConfigError(
            f"commercelayer.base_url is not set: the token names organization {slug} ({url}), but "
            f"commercelayer.auth_url {settings.commercelayer.auth_url} is local, so that address is not "
            "used; set commercelayer.base_url (CL_BASE_URL) to the API that goes with this token endpoint"
        )
    data = settings.model_dump()
    data["commercelayer"]["base_url"] = url
    return Settings.model_validate(data)
