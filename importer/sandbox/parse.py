"""Reading a JSON:API request document, with the 400s JSONAPI::Resources gives for bad ones."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from importer.sandbox.jsonapi import ApiError, bad_param, error, validation_error


@dataclass(frozen=True, slots=True)
class Document:
    id: str | None
    attributes: dict[str, Any]
    relationships: dict[str, dict[str, Any] | None]  # name -> {"type", "id"} or None


async def read_document(
    request: web.Request,
    type_: str,
    *,
    attributes: frozenset[str],
    relationships: frozenset[str],
    allow_id: bool = False,
) -> Document:
    try:
        body = json.loads(await request.text() or "null")
    except ValueError as exc:
        raise bad_param("Bad request", "The request body is not valid JSON.", "BAD_REQUEST") from exc
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise bad_param("Missing Parameter", "The required parameter, data, is missing.", "PARAM_MISSING")
    if data.get("type") is None:
        raise bad_param("Missing Parameter", "The required parameter, type, is missing.", "PARAM_MISSING")
    if data["type"] != type_:
        raise bad_param(
            "Invalid resource", f"{data['type']} is not a valid resource.", "INVALID_RESOURCE", "/data/type"
        )
    if "id" in data and not allow_id:
        raise bad_param("Param not allowed", "id is not allowed.", "PARAM_NOT_ALLOWED", "/data/id")
    attrs = data.get("attributes") or {}
    rels = data.get("relationships") or {}
    if not isinstance(attrs, dict) or not isinstance(rels, dict):
        raise bad_param("Bad request", "attributes and relationships must be objects.", "BAD_REQUEST")
    unknown = [
        error(
            400,
            "Param not allowed",
            f"{k} is not allowed.",
            "PARAM_NOT_ALLOWED",
            pointer=f"/data/attributes/{k}",
        )
        for k in attrs
        if k not in attributes
    ] + [
        error(
            400,
            "Param not allowed",
            f"{k} is not allowed.",
            "PARAM_NOT_ALLOWED",
            pointer=f"/data/relationships/{k}",
        )
        for k in rels
        if k not in relationships
    ]
    if unknown:
        raise ApiError(400, unknown)
    return Document(data.get("id"), attrs, {name: _linkage(name, value) for name, value in rels.items()})


def _linkage(name: str, value: Any) -> dict[str, Any] | None:
    target = value.get("data", ...) if isinstance(value, dict) else ...
    if target is None:
        return None
    if not isinstance(target, dict) or not isinstance(target.get("type"), str) or "id" not in target:
        raise bad_param(
            "Invalid Links Object",
            f"Data is not a valid Links Object for {name}.",
            "INVALID_LINKS_OBJECT",
            f"/data/relationships/{name}",
        )
    return {"type": target["type"], "id": None if target["id"] is None else str(target["id"])}


def expect_type(name: str, link: dict[str, Any] | None, type_: str) -> str | None:
    """The id of a non-polymorphic relationship, checking its type (400 TYPE_MISMATCH)."""
    if link is None:
        return None
    if link["type"] != type_:
        raise bad_param(
            "Type Mismatch",
            f"{link['type']} is not a valid type for this operation.",
            "TYPE_MISMATCH",
            f"/data/relationships/{name}/data/type",
        )
    return link["id"] or None


def string_attributes(attrs: dict[str, Any], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """422s for attributes that must be strings (or null) and `metadata` that must be an object."""
    errors = [
        validation_error(n, "is invalid", "invalid", f"/data/attributes/{n}")
        for n in names
        if attrs.get(n) is not None and not isinstance(attrs[n], str)
    ]
    if attrs.get("metadata") is not None and not isinstance(attrs["metadata"], dict):
        errors.append(validation_error("metadata", "is invalid", "invalid", "/data/attributes/metadata"))
    return errors
