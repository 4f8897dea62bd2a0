"""Test or live, and which organization, from the access token itself (pure).

A Commerce Layer access token is a JWT whose payload says `test: true|false` next to
`organization: {slug, id}` and `application: {kind}` (shared/commercelayer-api.md §9). The server
checks the signature; the client only reads the payload, the way Commerce Layer's own apps and
js-auth's `getCoreApiBaseEndpoint` do. Nothing here logs or returns the token.

    no preset given                → the preset follows `test`
    preset given, agrees           → nothing to say
    preset `test` on a live org    → a loud warning (half the allowed rate, nothing worse)
    preset `live` on a test org    → refused (twice what the windows allow: a 429 storm) unless --force
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from importer.errors import RunAborted


@dataclass(frozen=True, slots=True)
class TokenClaims:
    test: bool | None
    organization_slug: str | None
    organization_id: str | None
    application_kind: str | None


class PresetRefused(RunAborted):
    """`live` limits on a test organization without --force: exit 2, nothing was created."""

    exit_code = 2


def decode_claims(token: str) -> TokenClaims | None:
    """The payload of a JWT-shaped token, or None when the token is not one (no signature check)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        payload: Any = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(payload, dict):
        return None
    org = _mapping(payload.get("organization"))
    app = _mapping(payload.get("application"))
    test = payload.get("test")
    return TokenClaims(
        test=test if isinstance(test, bool) else None,
        organization_slug=_text(org.get("slug")),
        organization_id=_text(org.get("id")),
        application_kind=_text(app.get("kind")),
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def core_api_base_url(slug: str, domain: str = "commercelayer.io") -> str:
    """js-auth `getCoreApiBaseEndpoint`: `https://{organization.slug}.{domain}`."""
    return f"https://{slug}.{domain}"


@dataclass(frozen=True, slots=True)
class PresetChoice:
    preset: str  # the preset the run uses
    warning: str | None = None


def choose_preset(given: str | None, claims: TokenClaims | None, *, force: bool) -> PresetChoice:
    """The rate-limit preset for a run. Raises `PresetRefused` for live limits on a test org."""
    mode = None if claims is None or claims.test is None else ("test" if claims.test else "live")
    org = f" {claims.organization_slug}" if claims is not None and claims.organization_slug else ""
    if given is None:
        if mode is None:
            return PresetChoice(
                "test",
                "the access token does not say test or live; using the test preset "
                "(the slower one); pass --env live for a live organization",
            )
        return PresetChoice(mode)
    if mode is None or mode == given:
        return PresetChoice(given)
    if given == "test":
        return PresetChoice(
            given,
            f"WARNING: the access token is for the LIVE organization{org}, but the test preset was asked "
            "for (rate_limit.preset / --env test): the run goes at half the allowed rate. "
            "Drop --env (the preset follows the token) or pass --env live",
        )
    message = (
        f"the access token is for a TEST organization{org}, but live limits were asked for "
        "(rate_limit.preset / --env live): they allow twice what a test organization's windows take, "
        "so the API would answer 429 again and again. Drop --env live (the preset follows the token), "
        "or pass --force if the API really allows live rates"
    )
    if not force:
        raise PresetRefused(message + "; nothing was sent")
    return PresetChoice(given, "WARNING (--force): " + message)
