"""validate_row: every rule, messages in the file's words, and keys that match what a person sees."""

from __future__ import annotations

import pytest

from importer.models import PAYMENT_SOURCE_TYPES, Pairing, SourceRow
from importer.validator import Defaults, normalize_source_type, validate_row

CID = "CUST000001"
PSID = "PSRC000001"


def row(
    raw: dict[str, str], columns: dict[str, str] | None = None, cell_errors: tuple[str, ...] = ()
) -> SourceRow:
    """A row as the loader yields it; `columns` maps header → field (default: headers are fields)."""
    mapping = columns if columns is not None else {h: h for h in raw}
    fields = {mapping[h]: v for h, v in raw.items() if h in mapping and v}
    return SourceRow("in.csv", "", 2, dict(raw), fields, cell_errors)


def ok(
    raw: dict[str, str], columns: dict[str, str] | None = None, defaults: Defaults | None = None
) -> Pairing:
    result = validate_row(row(raw, columns), defaults or Defaults())
    assert isinstance(result, Pairing), result
    return result


def problems(raw: dict[str, str], columns: dict[str, str] | None = None, **kw: tuple[str, ...]) -> list[str]:
    result = validate_row(row(raw, columns, **kw), Defaults())
    assert isinstance(result, list), result
    return result


# -- source types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stripe_payments", "stripe_payments"),
        ("Stripe payment", "stripe_payments"),
        ("STRIPE_PAYMENT", "stripe_payments"),
        ("stripe-payments", "stripe_payments"),
        ("Stripe", "stripe_payments"),
        ("wire transfer", "wire_transfers"),
        ("Wire Transfers", "wire_transfers"),
        ("wire", "wire_transfers"),
        ("checkout.com payment", "checkout_com_payments"),
        ("Checkout.com", "checkout_com_payments"),
        ("checkout_com_payments", "checkout_com_payments"),
        ("PayPal", "paypal_payments"),
        ("Klarna Payments", "klarna_payments"),
        ("external payment", "external_payments"),
        ("Braintree", "braintree_payments"),
        ("adyen-payment", "adyen_payments"),
        ("axerve", "axerve_payments"),
        ("Satispay payments", "satispay_payments"),
    ],
)
def test_normalize_source_type(text: str, expected: str) -> None:
    assert normalize_source_type(text) == expected


@pytest.mark.parametrize("text", ["", "card", "payments", "stripe paypal", "credit card", "transfer"])
def test_unknown_source_types(text: str) -> None:
    assert normalize_source_type(text) is None


def test_every_api_type_is_its_own_spelling() -> None:
    assert all(normalize_source_type(t) == t for t in PAYMENT_SOURCE_TYPES)


# -- good rows --------------------------------------------------------------------------------


def test_type_and_id_shape() -> None:
    pairing = ok({"customer_id": CID, "payment_source_type": "Stripe payment", "payment_source_id": PSID})
    assert pairing == Pairing(
        customer_id=CID,
        customer_email=None,
        payment_source_type="stripe_payments",
        payment_source_id=PSID,
        payment_source_type_given="Stripe payment",
    )
    assert pairing.key() == f"id:{CID}|stripe_payments:{PSID}"


def test_token_shape_with_optional_parts() -> None:
    pairing = ok(
        {
            "customer_email": "Ann@Example.COM",
            "payment_source_token": "tok_123",
            "customer_token": "cus_9",
            "payment_method_id": "PMTH000001",
        }
    )
    # Kept as written: the API may match e-mails case-sensitively. The key folds case, so
    # case variants are still the same customer for duplicate detection.
    assert pairing.customer_email == "Ann@Example.COM"
    assert pairing.customer_id is None
    assert (pairing.payment_source_token, pairing.customer_token, pairing.payment_method_id) == (
        "tok_123",
        "cus_9",
        "PMTH000001",
    )
    assert pairing.payment_source_id is None
    assert pairing.key() == "email:ann@example.com|token:tok_123"


def test_token_shape_keeps_a_valid_type() -> None:
    pairing = ok({"customer_id": CID, "payment_source_type": "stripe", "payment_source_token": "tok_1"})
    assert pairing.payment_source_type == "stripe_payments"
    assert pairing.source_ref == "token:tok_1"


def test_customer_id_keys_the_row_and_email_is_still_checked() -> None:
    # Both are kept: at run time the e-mail must name the same customer (prepare.customer_for).
    pairing = ok({"customer_id": CID, "customer_email": "A@B.CO", "payment_source_token": "t"})
    assert pairing.customer_ref == f"id:{CID}"
    assert pairing.customer_email == "A@B.CO"
    found = problems({"customer_id": CID, "customer_email": "not-an-email", "payment_source_token": "t"})
    assert len(found) == 1 and "'customer_email'" in found[0] and "not an email" in found[0]


def test_reference_and_defaults() -> None:
    defaults = Defaults(reference_origin="erp", metadata={"source": "import", "tier": "gold"})
    pairing = ok({"customer_id": CID, "payment_source_token": "t", "reference": "R-1"}, defaults=defaults)
    assert (pairing.reference, pairing.reference_origin) == ("R-1", "erp")
    assert pairing.metadata == {"source": "import", "tier": "gold"}
    own = ok({"customer_id": CID, "payment_source_token": "t", "reference_origin": "crm"}, defaults=defaults)
    assert own.reference_origin == "crm"


def test_metadata_merge_order_defaults_then_json_then_columns() -> None:
    defaults = Defaults(metadata={"a": "default", "b": "default", "c": "default"})
    pairing = ok(
        {
            "customer_id": CID,
            "payment_source_token": "t",
            "Metadata": '{"b": "json", "c": "json", "n": 2}',
            "metadata.c": "column",
        },
        columns={
            "customer_id": "customer_id",
            "payment_source_token": "payment_source_token",
            "Metadata": "metadata",
            "metadata.c": "metadata.c",
        },
        defaults=defaults,
    )
    assert pairing.metadata == {"a": "default", "b": "json", "c": "column", "n": 2}


def test_defaults_are_not_mutated() -> None:
    meta = {"a": 1}
    defaults = Defaults(metadata=meta)
    ok({"customer_id": CID, "payment_source_token": "t", "metadata.b": "2"}, defaults=defaults)
    assert meta == {"a": 1}


# -- problems, in the file's words --------------------------------------------------------------


def test_messages_name_the_column_as_the_file_calls_it() -> None:
    found = problems(
        {"Kunde": "123", "Kartentyp": "visa", "Karte": PSID},
        columns={"Kunde": "customer_id", "Kartentyp": "payment_source_type", "Karte": "payment_source_id"},
    )
    assert len(found) == 2
    assert found[0].startswith("column 'Kunde': '123' is not a valid id")
    assert "leading zeros" in found[0] and "Text" in found[0]
    assert found[1].startswith("column 'Kartentyp': 'visa' is not a payment source type")


def test_builtin_alias_headers_are_named_even_when_empty() -> None:
    found = problems(
        {"Customer E-mail": "", "Card Token": "tok"},
        columns={"Customer E-mail": "customer_email", "Card Token": "payment_source_token"},
    )
    assert found == [
        "no customer: fill in 'customer_id' (the customer's 10-character id) or 'Customer E-mail'"
    ]


def test_every_problem_is_reported_at_once() -> None:
    found = problems(
        {
            "customer_id": "abc",
            "customer_email": "x@",
            "payment_source_type": "bogus",
            "payment_source_id": "12",
            "metadata": "[1]",
        },
        cell_errors=("column 'X': lost digits",),
    )
    assert found[0] == "column 'X': lost digits"
    assert len(found) == 6
    joined = "\n".join(found)
    for expected in (
        "'customer_id'",
        "'customer_email'",
        "'payment_source_type'",
        "'payment_source_id'",
        '{"key": "value"}',
    ):
        assert expected in joined


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("123", "leading zeros"),
        ("ABCDEFGHIJK", "this one has 11"),
        ("ABC-DEFGHI", "remove spaces"),
        ("ÄBCDEFGHIJ", "remove spaces"),
        ("ABCDE FGHI", "remove spaces"),
    ],
)
def test_ids_are_ten_ascii_alphanumerics(value: str, hint: str) -> None:
    found = problems({"customer_id": value, "payment_source_token": "t"})
    assert len(found) == 1 and hint in found[0] and repr(value) in found[0]


def test_id_hint_for_lost_zeros_only_for_short_all_digit_values() -> None:
    found = problems({"customer_id": "12345678901", "payment_source_token": "t"})
    assert "leading zeros" not in found[0]


def test_no_customer_and_no_source() -> None:
    found = problems({"reference": "x"})
    assert found == [
        "no customer: fill in 'customer_id' (the customer's 10-character id) or 'customer_email'",
        "no payment source: fill in 'payment_source_type' + 'payment_source_id', or 'payment_source_token'",
    ]


def test_type_without_id() -> None:
    found = problems({"customer_id": CID, "payment_source_type": "stripe"})
    assert found == [
        "column 'payment_source_id' is empty: fill in the payment source's 10-character id "
        "(or give 'payment_source_token' instead)"
    ]


def test_id_without_type() -> None:
    found = problems({"customer_id": CID, "payment_source_id": PSID})
    assert len(found) == 1 and found[0].startswith("column 'payment_source_type' is empty")


def test_both_shapes_is_an_error() -> None:
    found = problems(
        {
            "customer_id": CID,
            "payment_source_type": "stripe",
            "payment_source_id": PSID,
            "payment_source_token": "tok",
        }
    )
    assert len(found) == 1 and "not both" in found[0]


def test_token_extras_next_to_an_id_are_an_error() -> None:
    found = problems(
        {
            "customer_id": CID,
            "payment_source_type": "stripe",
            "payment_source_id": PSID,
            "customer_token": "cus_1",
            "payment_method_id": "PMTH000001",
        }
    )
    assert len(found) == 2
    assert all("only goes with a payment source token" in p for p in found)


@pytest.mark.parametrize(("token", "hint"), [("tok 1", "spaces"), ("tok\n1", "spaces"), ("t" * 256, "256")])
def test_token_rules(token: str, hint: str) -> None:
    found = problems({"customer_id": CID, "payment_source_token": token})
    assert len(found) == 1 and hint in found[0]


def test_token_of_255_characters_is_fine() -> None:
    assert ok({"customer_id": CID, "payment_source_token": "t" * 255}).payment_source_token == "t" * 255


def test_customer_token_and_payment_method_id_are_checked_with_a_token() -> None:
    found = problems(
        {
            "customer_id": CID,
            "payment_source_token": "tok",
            "customer_token": "a b",
            "payment_method_id": "pm_1",
        }
    )
    assert len(found) == 2


@pytest.mark.parametrize(
    "email", ["a@b.co", "first.last+tag@sub.example.org", "x_y@ex-ample.de", "müller@bücher.de"]
)
def test_good_emails(email: str) -> None:
    assert ok({"customer_email": email, "payment_source_token": "t"}).customer_email == email.lower()


@pytest.mark.parametrize(
    ("cell", "email"),
    [
        ("Ann <A@b.de>", "A@b.de"),  # kept as written (a2: e-mail case)
        ('"Lovelace, Ada" < ada@example.com >', "ada@example.com"),
        ("<ada@example.com>", "ada@example.com"),
    ],
)
def test_a_name_and_address_is_unwrapped_to_the_address(cell: str, email: str) -> None:
    """Issue 9: `Name <address>`, as mail clients copy it, is the address."""
    assert ok({"customer_email": cell, "payment_source_token": "t"}).customer_email == email


@pytest.mark.parametrize("char", ["\u200b", "\u200c", "\u200d", "\ufeff", "\u00ad", "\u2060"])
def test_invisible_characters_leave_keys_but_not_references_or_metadata(char: str) -> None:
    """Issue 9: a zero-width space in an e-mail passed validate and failed run; now the key fields
    lose them (validate and run see the same pairing), and free text keeps them."""
    pairing = ok(
        {
            "customer_email": f"ada{char}@example.com{char}",
            "payment_source_type": f"stripe{char}_payments",
            "payment_source_id": f"{char}PSRC000001",
            "reference": f"ref{char}1",
            "metadata.note": f"n{char}",
        }
    )
    assert pairing.customer_email == "ada@example.com"
    assert pairing.payment_source_type == "stripe_payments"
    assert pairing.payment_source_id == "PSRC000001"
    assert pairing.key() == "email:ada@example.com|stripe_payments:PSRC000001"
    assert pairing.reference == f"ref{char}1"
    assert pairing.metadata["note"] == f"n{char}"
    token = ok({"customer_id": CID, "payment_source_token": f"tok{char}_1", "customer_token": f"cus{char}_9"})
    assert (token.payment_source_token, token.customer_token) == ("tok_1", "cus_9")


@pytest.mark.parametrize(
    "email",
    [
        "a",
        "a@b",
        "a@b.",
        "@b.co",
        "a b@c.de",
        "a@@b.de",
        "Ann <a@b.de",
        "Ann <a@b.de> <c@d.de>",
        "a@b..de",
        "a..b@c.de",
        "a@b.c0m1",
        "a@b.de; c@d.de",
    ],
)
def test_bad_emails(email: str) -> None:
    found = problems({"customer_email": email, "payment_source_token": "t"})
    assert len(found) == 1 and "name@example.com" in found[0]


@pytest.mark.parametrize("text", ["[]", "not json", '"text"', "null", "{'a': 1}"])
def test_metadata_must_be_a_json_object(text: str) -> None:
    found = problems({"customer_id": CID, "payment_source_token": "t", "metadata": text})
    assert len(found) == 1 and '{"key": "value"}' in found[0]


def test_cell_errors_alone_make_a_row_invalid() -> None:
    found = problems({"customer_id": CID, "payment_source_token": "t"}, cell_errors=("column 'Ref': #N/A",))
    assert found == ["column 'Ref': #N/A"]


# -- keys -------------------------------------------------------------------------------------


def test_rows_a_person_sees_as_the_same_have_the_same_key() -> None:
    a = ok(
        {
            "customer_email": "Ann@Example.com",
            "payment_source_type": "Stripe Payment",
            "payment_source_id": PSID,
        }
    )
    b = ok(
        {
            "customer_email": "ann@example.COM",
            "payment_source_type": "stripe_payments",
            "payment_source_id": PSID,
        }
    )
    assert a.key() == b.key()
    c = ok({"customer_id": CID, "payment_source_type": "WIRE-TRANSFER", "payment_source_id": PSID})
    d = ok({"customer_id": CID, "payment_source_type": "wire transfers", "payment_source_id": PSID})
    assert c.key() == d.key()


def test_different_pairings_have_different_keys() -> None:
    a = ok({"customer_id": CID, "payment_source_type": "stripe", "payment_source_id": PSID})
    b = ok({"customer_id": CID, "payment_source_type": "paypal", "payment_source_id": PSID})
    c = ok({"customer_id": "CUST000002", "payment_source_type": "stripe", "payment_source_id": PSID})
    assert len({a.key(), b.key(), c.key()}) == 3


def test_pairing_round_trips_through_json() -> None:
    pairing = ok({"customer_id": CID, "payment_source_token": "t", "metadata": '{"n": [1, 2]}'})
    assert Pairing.from_json(pairing.to_json()) == pairing


def test_an_overlong_reference_or_metadata_is_invalid_before_anything_is_sent() -> None:
    from importer.validator import MAX_TEXT_LENGTH

    base = {"customer_id": CID, "payment_source_type": "stripe_payments", "payment_source_id": PSID}
    found = problems({**base, "reference": "R" * (MAX_TEXT_LENGTH + 1)})
    assert any("'reference'" in p and "10,001 characters" in p for p in found), found
    found = problems({**base, "metadata.note": "x" * MAX_TEXT_LENGTH})
    assert any(p.startswith("metadata:") for p in found), found
    assert isinstance(validate_row(row({**base, "reference": "R" * MAX_TEXT_LENGTH}), Defaults()), Pairing)
