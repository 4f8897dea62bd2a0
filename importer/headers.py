"""Match the headers finance teams write to the fields the importer understands.

Pure: no I/O. People write "Customer E-mail", "customer_email" or "EMAIL"; all of them mean
`customer_email`. Matching ignores case, spaces, `_`, `-` and `.`, so the alias lists only
need one spelling per wording. Config (`columns:`) adds aliases on top of the built-in ones and
wins over them, because it is the user's explicit word about their own file.

`metadata.<key>` columns (also written `metadata:<key>` or `Metadata <key>`) become metadata
entries; the key is kept exactly as written (trimmed) because it ends up in the API.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from importer.models import CANONICAL_FIELDS, METADATA_PREFIX

# One entry per wording; spelling variants (case, spaces, _ - .) are covered by `_squash`.
BUILTIN_ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "customer_id": ("Customer ID", "customer", "cust id", "customer identifier"),
        "customer_email": (
            "Customer Email",
            "Customer E-mail",
            "email",
            "e-mail",
            "Email Address",
            "customer email address",
        ),
        # "Payment Method Type" is a type, not `payment_method_id`: after squashing the two
        # stay distinct ("paymentmethodtype" vs "paymentmethod"/"paymentmethodid").
        "payment_source_type": ("Payment Source Type", "source type", "payment type", "Payment Method Type"),
        "payment_source_id": ("Payment Source ID", "source id", "card id"),
        "payment_source_token": (
            "Payment Source Token",
            "Card Token",
            "PSP token",
            "gateway token",
            "pm token",
            "source token",
            "payment token",
        ),
        "customer_token": ("Customer Token", "gateway customer", "cus token", "gateway customer token"),
        "payment_method_id": ("Payment Method ID", "payment method"),
        "reference": ("Reference", "ref", "external id", "external reference"),
        "reference_origin": ("Reference Origin", "ref origin"),
        "metadata": ("Metadata", "meta"),
    }
)

_NO_ALIASES: Mapping[str, Sequence[str]] = MappingProxyType({})
_SQUASH = re.compile(r"[\s_.\-]+")
_METADATA_COLUMN = re.compile(r"^metadata(?:\s*[.:]\s*|\s+)(?P<key>\S.*)$", re.IGNORECASE | re.DOTALL)


def _squash(text: str) -> str:
    # Accents are folded so a French or German export's "Référence" matches "reference".
    folded = unicodedata.normalize("NFKD", text.strip().lstrip("\ufeff").casefold())
    return _SQUASH.sub("", "".join(ch for ch in folded if not unicodedata.combining(ch)))


def normalize_header(header: str) -> str:
    """The form headers are compared in: `metadata.<key>` (key as written) or squashed lower case.

    The metadata prefix is handled first, because squashing would glue the key to the prefix
    and lose the key's spelling.
    """
    text = header.strip().lstrip("\ufeff").strip()
    match = _METADATA_COLUMN.match(text)
    if match:
        return METADATA_PREFIX + match.group("key").strip()
    return _squash(text)


@dataclass(frozen=True, slots=True)
class HeaderConflict:
    """Two columns that both mean `field`; the first one (by position) is the one used."""

    field: str
    first: str
    second: str
    first_index: int
    second_index: int


@dataclass(frozen=True, slots=True)
class HeaderMap:
    """How one file's (or sheet's) headers map to fields.

    `columns`: original header → canonical field or `metadata.<key>`.
    `unknown`: headers that match nothing; kept in `SourceRow.raw`, ignored for the request.
    `conflicts`: later columns that mean a field an earlier column already gives.
    """

    columns: dict[str, str]
    unknown: tuple[str, ...] = ()
    conflicts: tuple[HeaderConflict, ...] = ()

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.columns.values())

    def header_for(self, field: str) -> str | None:
        """The header (as the file writes it) that gives `field`, if any."""
        for header, target in self.columns.items():
            if target == field:
                return header
        return None


def _check_target(target: str) -> None:
    if target in CANONICAL_FIELDS:
        return
    if target.startswith(METADATA_PREFIX) and target[len(METADATA_PREFIX) :].strip():
        return
    raise ValueError(
        f"unknown field {target!r} in the column aliases; use one of "
        f"{', '.join(CANONICAL_FIELDS)} or metadata.<key>"
    )


def _alias_table(extra_aliases: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Squashed alias → target. Extra (config) aliases override built-ins for the same wording."""
    table = {_squash(field): field for field in CANONICAL_FIELDS}
    for field, names in BUILTIN_ALIASES.items():
        table.update({_squash(name): field for name in names})
    extra: dict[str, str] = {}
    for target, given in extra_aliases.items():
        _check_target(target)
        # A bare string is a Sequence[str] too; treat it as one header, not as its letters.
        for name in (given,) if isinstance(given, str) else tuple(given):
            key = normalize_header(name)
            if not key:
                raise ValueError(f"empty header name given as an alias of {target!r}")
            if extra.get(key, target) != target:
                raise ValueError(
                    f"header {name!r} is given as an alias of both {extra[key]!r} and {target!r}"
                )
            extra[key] = target
    table.update(extra)
    return table


def check_aliases(extra_aliases: Mapping[str, Sequence[str]]) -> None:
    """Raise `ValueError` naming the problem when config aliases are unusable."""
    _alias_table(extra_aliases)


def match_headers(
    headers: Sequence[str], extra_aliases: Mapping[str, Sequence[str]] = _NO_ALIASES
) -> HeaderMap:
    """Map each header to a field; the first column giving a field wins, later ones conflict."""
    table = _alias_table(extra_aliases)
    columns: dict[str, str] = {}
    first_index: dict[str, tuple[str, int]] = {}
    unknown: dict[str, None] = {}  # an ordered set: a sheet may have thousands of columns
    conflicts: list[HeaderConflict] = []
    for index, header in enumerate(headers):
        key = normalize_header(header)
        target = table.get(key) or (key if key.startswith(METADATA_PREFIX) else None)
        if target is None:
            if key:
                unknown.setdefault(header, None)
            continue
        if target in first_index:
            first, at = first_index[target]
            conflicts.append(HeaderConflict(target, first, header, at, index))
            continue
        first_index[target] = (header, index)
        columns[header] = target
    return HeaderMap(columns=columns, unknown=tuple(unknown), conflicts=tuple(conflicts))


REQUIREMENTS = (
    "a customer column (customer_id or customer_email) and a payment source "
    "(payment_source_type + payment_source_id, or payment_source_token)"
)


def missing_required(hm: HeaderMap) -> list[str]:
    """What the headers lack to make any row valid, in plain words; empty when nothing is missing."""
    fields = hm.fields
    missing: list[str] = []
    if not fields & {"customer_id", "customer_email"}:
        missing.append("a customer column (customer_id or customer_email)")
    has_type, has_id = "payment_source_type" in fields, "payment_source_id" in fields
    if "payment_source_token" not in fields and not (has_type and has_id):
        if has_type:
            missing.append("payment_source_id (to go with payment_source_type), or payment_source_token")
        elif has_id:
            missing.append("payment_source_type (to go with payment_source_id), or payment_source_token")
        else:
            missing.append(
                "a payment source (payment_source_type + payment_source_id, or payment_source_token)"
            )
    return missing
