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
        "customer_id": (
            "Customer ID", "customer", "cust id", "customer identifier",
            "Kunde", "Client", "Cliente", "Klant",
            # fr, de, es, it, pt, nl
            "ID client", "Identifiant client", "Client ID",
            "Kunden-ID", "Kundenkennung", "Kunde ID",
            "ID de cliente", "ID del cliente", "Identificador de cliente",
            "ID cliente",
            "ID do cliente", "Identificador do cliente",
            "Klant-ID", "Klant ID", "Klantidentificatie",
        ),
        "customer_email": (
            "Customer Email", "Customer E-mail", "email", "e-mail", "Email Address",
            "customer email address", "mail",
            "Courriel", "Adresse e-mail", "Adresse électronique", "E-mail client", "Courriel client",
            "Kunden-E-Mail", "E-Mail-Adresse", "Kunden E-Mail-Adresse", "Mail-Adresse",
            "Correo electrónico", "Correo", "Correo del cliente", "Email del cliente",
            "Correo electrónico del cliente",
            "Email cliente", "Indirizzo email", "Posta elettronica", "E-mail del cliente",
            "E-mail do cliente", "Endereço de e-mail", "Correio eletrónico", "Correio eletrônico",
            "Klant-e-mail", "E-mailadres", "E-mail klant",
        ),
        # "Payment Method Type" is a type, not `payment_method_id`: after squashing the two
        # stay distinct ("paymentmethodtype" vs "paymentmethod"/"paymentmethodid").
        "payment_source_type": (
            "Payment Source Type", "source type", "payment type", "Payment Method Type",
            "Type de source de paiement", "Type de moyen de paiement", "Type de paiement",
            "Zahlungsquellentyp", "Zahlungsquelle Typ", "Zahlungsart",
            "Tipo de fuente de pago", "Tipo de pago", "Tipo di fonte di pagamento", "Tipo di pagamento",
            "Tipo de fonte de pagamento", "Tipo de pagamento",
            "Type betaalbron", "Betaalbrontype", "Betaalmethode type",
        ),
        "payment_source_id": (
            "Payment Source ID", "source id", "card id",
            "ID source de paiement", "ID de la source de paiement", "Zahlungsquellen-ID", "Zahlungsquelle ID",
            "ID de fuente de pago", "ID fonte di pagamento", "ID da fonte de pagamento",
            "ID de fonte de pagamento", "Betaalbron-ID", "Betaalbron ID",
        ),
        "payment_source_token": (
            "Payment Source Token", "Card Token", "PSP token", "gateway token", "pm token",
            "source token", "payment token",
            "Jeton", "Jeton de paiement", "Jeton de carte", "Zahlungstoken", "Karten-Token",
            "Token de pago", "Token de tarjeta", "Token di pagamento", "Token della carta",
            "Token de pagamento", "Token do cartão", "Betaaltoken", "Kaarttoken",
        ),
        "customer_token": (
            "Customer Token", "gateway customer", "cus token", "gateway customer token",
            "gateway customer id", "Stripe customer", "Stripe customer id", "PSP customer",
            "PSP customer id", "Braintree customer id", "Adyen shopper reference", "shopper reference",
            "Jeton client", "Kunden-Token", "Token de cliente", "Token cliente", "Token do cliente",
            "Klanttoken",
        ),
        "payment_method_id": ("Payment Method ID", "payment method"),
        "reference": (
            "Reference", "ref", "external id", "external reference",
            "Référence", "Referenz", "Referencia", "Riferimento", "Referência", "Referentie", "Kenmerk",
        ),
        "reference_origin": (
            "Reference Origin", "ref origin",
            "Origine de la référence", "Referenzherkunft", "Herkunft der Referenz",
            "Origen de la referencia", "Origine del riferimento", "Origem da referência",
            "Herkomst referentie",
        ),
        "metadata": ("Metadata", "meta", "Métadonnées", "Metadaten", "Metadatos", "Metadati", "Metadados"),
    }
)  # fmt: skip

_NO_ALIASES: Mapping[str, Sequence[str]] = MappingProxyType({})
_NO_OVERRIDES: Mapping[str, str | None] = MappingProxyType({})
_ID_VALUE = re.compile(r"[A-Za-z0-9]{10}")
# Header words that name a customer without saying "id": only these are checked against values.
_LOOSE_CUSTOMER = frozenset({"customer", "cust", "kunde", "client", "cliente", "klant"})
_GATEWAY_CUSTOMER = re.compile(r"(?:cus|cust|customer|shopper)_[A-Za-z0-9]+")
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
    headers: Sequence[str],
    extra_aliases: Mapping[str, Sequence[str]] = _NO_ALIASES,
    *,
    overrides: Mapping[str, str | None] = _NO_OVERRIDES,
) -> HeaderMap:
    """Map each header to a field; the first column giving a field wins, later ones conflict.

    `overrides` (header → field, or None for none) come from the columns' values and win over
    the names (see `fitting_overrides`)."""
    table = _alias_table(extra_aliases)
    columns: dict[str, str] = {}
    first_index: dict[str, tuple[str, int]] = {}
    unknown: dict[str, None] = {}  # an ordered set: a sheet may have thousands of columns
    conflicts: list[HeaderConflict] = []
    for index, header in enumerate(headers):
        key = normalize_header(header)
        if header in overrides:
            target = overrides[header]
        else:
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


def _mostly(values: Sequence[str], pattern: re.Pattern[str]) -> bool:
    return sum(1 for v in values if pattern.fullmatch(v)) * 2 > len(values)


def fitting_overrides(
    hm: HeaderMap,
    samples: Mapping[str, Sequence[str]],
    extra_aliases: Mapping[str, Sequence[str]] = _NO_ALIASES,
) -> dict[str, str | None]:
    """Headers whose values say the name misled: header → the field they fit (None: no field).

    A column named only "Customer" (or "Kunde", "Client", …) whose values are mostly not ids is
    not the customer id when another column names the customer (an e-mail column, or a second
    customer-id column such as "Customer ID"): gateway customers (`cus_…`) become
    `customer_token`, names become an unknown column. Without such a column it stays the id, and
    its rows say the values are not ids. A config alias is the user's explicit word and is never
    second-guessed; nor is a column whose values cannot be seen.
    """
    overrides: dict[str, str | None] = {}
    fields = hm.fields
    explicit = {
        normalize_header(name)
        for names in extra_aliases.values()
        for name in ((names,) if isinstance(names, str) else names)
    }
    two_ids = any(c.field == "customer_id" for c in hm.conflicts)
    candidates = [h for h, target in hm.columns.items() if target == "customer_id"]
    candidates += [c.second for c in hm.conflicts if c.field == "customer_id"]
    for header in candidates:
        key = normalize_header(header)
        if key in explicit or key not in _LOOSE_CUSTOMER:
            continue
        values = samples.get(header) or ()
        if not values or _mostly(values, _ID_VALUE) or not ("customer_email" in fields or two_ids):
            continue
        if _mostly(values, _GATEWAY_CUSTOMER) and "customer_token" not in fields:
            overrides[header] = "customer_token"
        else:
            overrides[header] = None
    return overrides
