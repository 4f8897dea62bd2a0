"""Header matching: aliases, metadata columns, conflicts, required columns, config aliases."""

from __future__ import annotations

import pytest

from importer.headers import (
    BUILTIN_ALIASES,
    HeaderConflict,
    check_aliases,
    match_headers,
    missing_required,
    normalize_header,
)
from importer.models import CANONICAL_FIELDS


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Customer ID", "customerid"),
        ("  customer_id ", "customerid"),
        ("CUSTOMER-ID", "customerid"),
        ("Cust. ID", "custid"),
        ("\ufeffCustomer ID", "customerid"),
        ("metadata.Color", "metadata.Color"),
        ("Metadata: Shoe Size ", "metadata.Shoe Size"),
        ("metadata:color", "metadata.color"),
        ("Metadata loyalty_tier", "metadata.loyalty_tier"),
        ("Metadata", "metadata"),
        ("metadata.", "metadata"),
    ],
)
def test_normalize_header(header: str, expected: str) -> None:
    assert normalize_header(header) == expected


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("Customer ID", "customer_id"),
        ("customer", "customer_id"),
        ("Customer Id", "customer_id"),
        ("cust id", "customer_id"),
        ("Customer Email", "customer_email"),
        ("Customer E-mail", "customer_email"),
        ("email", "customer_email"),
        ("E-Mail", "customer_email"),
        ("Email Address", "customer_email"),
        ("Payment Source Type", "payment_source_type"),
        ("source type", "payment_source_type"),
        ("Payment Type", "payment_source_type"),
        ("Payment Method Type", "payment_source_type"),
        ("Payment Source ID", "payment_source_id"),
        ("source id", "payment_source_id"),
        ("Card ID", "payment_source_id"),
        ("Payment Source Token", "payment_source_token"),
        ("Card Token", "payment_source_token"),
        ("PSP token", "payment_source_token"),
        ("gateway token", "payment_source_token"),
        ("PM Token", "payment_source_token"),
        ("Customer Token", "customer_token"),
        ("gateway customer", "customer_token"),
        ("cus_token", "customer_token"),
        ("Payment Method ID", "payment_method_id"),
        ("payment method", "payment_method_id"),
        ("Reference", "reference"),
        ("ref", "reference"),
        ("External ID", "reference"),
        ("Reference Origin", "reference_origin"),
        ("Metadata", "metadata"),
    ],
)
def test_builtin_aliases(header: str, field: str) -> None:
    assert match_headers([header]).columns == {header: field}


def test_every_canonical_name_matches_itself() -> None:
    hm = match_headers(list(CANONICAL_FIELDS))
    assert hm.columns == {f: f for f in CANONICAL_FIELDS}
    assert hm.unknown == ()


def test_builtin_aliases_never_collide_across_fields() -> None:
    seen: dict[str, str] = {}
    for field, names in BUILTIN_ALIASES.items():
        assert field in CANONICAL_FIELDS
        for name in (field, *names):
            key = normalize_header(name)
            assert seen.setdefault(key, field) == field, name


def test_metadata_columns_keep_their_key() -> None:
    hm = match_headers(["Customer ID", "metadata.Color", "Metadata: tier "])
    assert hm.columns == {
        "Customer ID": "customer_id",
        "metadata.Color": "metadata.Color",
        "Metadata: tier ": "metadata.tier",
    }


def test_unknown_headers_are_reported_once_and_blank_ones_not_at_all() -> None:
    hm = match_headers(["Name", "Customer ID", "", "Notes", "Notes"])
    assert hm.unknown == ("Name", "Notes")
    assert hm.columns == {"Customer ID": "customer_id"}


def test_second_column_for_the_same_field_is_a_conflict() -> None:
    hm = match_headers(["Email", "Customer ID", "E-mail"])
    assert hm.columns == {"Email": "customer_email", "Customer ID": "customer_id"}
    assert hm.conflicts == (HeaderConflict("customer_email", "Email", "E-mail", 0, 2),)


def test_a_repeated_header_is_a_conflict() -> None:
    hm = match_headers(["Card ID", "Card ID"])
    assert hm.conflicts == (HeaderConflict("payment_source_id", "Card ID", "Card ID", 0, 1),)


def test_config_aliases_add_to_the_builtins() -> None:
    hm = match_headers(
        ["Kundennummer", "Kartentyp", "Karten-ID", "Farbe"],
        {
            "customer_id": ["Kundennummer"],
            "payment_source_type": ["Kartentyp"],
            "payment_source_id": ["Karten ID"],
            "metadata.color": ["Farbe"],
        },
    )
    assert hm.columns == {
        "Kundennummer": "customer_id",
        "Kartentyp": "payment_source_type",
        "Karten-ID": "payment_source_id",
        "Farbe": "metadata.color",
    }
    assert match_headers(["Customer ID"], {"customer_id": ["Kundennummer"]}).columns == {
        "Customer ID": "customer_id"
    }


def test_config_alias_given_as_a_bare_string_is_one_header() -> None:
    assert match_headers(["Kunde"], {"customer_id": "Kunde"}).columns == {"Kunde": "customer_id"}


def test_config_aliases_win_over_builtins() -> None:
    # The user says their "Reference" column holds customer ids.
    assert match_headers(["Reference"], {"customer_id": ["Reference"]}).columns == {
        "Reference": "customer_id"
    }


def test_unknown_canonical_field_in_config_raises_naming_it() -> None:
    with pytest.raises(ValueError, match="customer_number"):
        match_headers(["x"], {"customer_number": ["Kundennummer"]})
    with pytest.raises(ValueError, match="customer_number"):
        check_aliases({"customer_number": ["x"]})


def test_one_alias_for_two_fields_in_config_raises() -> None:
    with pytest.raises(ValueError, match="both"):
        check_aliases({"customer_id": ["Nummer"], "payment_source_id": ["nummer"]})


def test_missing_required_is_empty_for_complete_headers() -> None:
    assert missing_required(match_headers(["Customer ID", "Payment Source Type", "Payment Source ID"])) == []
    assert missing_required(match_headers(["Email", "Card Token"])) == []


def test_missing_required_names_what_is_missing() -> None:
    assert missing_required(match_headers(["Name", "Card"])) == [
        "a customer column (customer_id or customer_email)",
        "a payment source (payment_source_type + payment_source_id, or payment_source_token)",
    ]
    only_type = missing_required(match_headers(["Email", "Payment Source Type"]))
    assert only_type == ["payment_source_id (to go with payment_source_type), or payment_source_token"]
    only_id = missing_required(match_headers(["Email", "Card ID"]))
    assert only_id == ["payment_source_type (to go with payment_source_id), or payment_source_token"]
    assert missing_required(match_headers(["Card Token"])) == [
        "a customer column (customer_id or customer_email)"
    ]


def test_accented_headers_match_their_plain_alias() -> None:
    hm = match_headers(["Référence", "Customer E-mail", "Payment Source ID", "Payment type"])
    assert hm.columns["Référence"] == "reference"
    assert hm.columns["Payment type"] == "payment_source_type"
