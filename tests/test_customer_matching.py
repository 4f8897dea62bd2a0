"""Pure pieces of issue 8, part 2: e-mail forms and matching, which customer a row names, the
wallet look-up request, and 422 details that name the relationship."""

from __future__ import annotations

from urllib.parse import parse_qs

from importer.lookups import (
    MAX_TOKEN_FILTER_CHARS,
    customers_by_email,
    email_forms,
    match_emails,
    token_filter,
    wallet_by_customers,
)
from importer.models import Outcome, Pairing, RowStatus
from importer.prepare import customer_for
from importer.rejections import relationship_detail


def test_email_forms_are_as_written_and_lower_case_deduplicated() -> None:
    assert email_forms(["Anna@Example.com", "bob@example.com", "anna@example.com", "Anna@Example.com"]) == [
        "Anna@Example.com",
        "anna@example.com",
        "bob@example.com",
    ]
    query = parse_qs(customers_by_email(email_forms(["A+b@X.io"])).query)
    assert query["filter[q][email_in]"] == ["A+b@X.io,a+b@x.io"]  # '+' survives (sent as %2B)


def test_answers_are_matched_ignoring_case() -> None:
    found = [("Cust000001", "anna@example.com"), ("Cust000002", "Anna@Example.com"), ("Cust000003", "b@x.io")]
    matched = match_emails(["ANNA@example.com", "B@X.IO", "nobody@x.io"], found)
    assert matched == {
        "ANNA@example.com": (("Cust000001", "anna@example.com"), ("Cust000002", "Anna@Example.com")),
        "B@X.IO": (("Cust000003", "b@x.io"),),
        "nobody@x.io": (),
    }
    # The same customer in two answers (asked for in two forms) is one match.
    assert match_emails(["b@x.io"], [*found, ("Cust000003", "b@x.io")])["b@x.io"] == (
        ("Cust000003", "b@x.io"),
    )


ANNA = ("Cust000001", "Anna@Example.com")
ANNA_LOWER = ("Cust000002", "anna@example.com")


def _failure(result: str | Outcome) -> tuple[str | None, str | None]:
    assert isinstance(result, Outcome) and result.status is RowStatus.FAILED
    return result.error_code, result.error_detail


def test_customer_for_an_email_row() -> None:
    assert customer_for(None, "anna@example.com", (ANNA,)) == "Cust000001"
    code, detail = _failure(customer_for(None, "x@example.com", ()))
    assert code == "CUSTOMER_NOT_FOUND" and "x@example.com" in (detail or "")
    code, detail = _failure(customer_for(None, "ANNA@example.com", (ANNA, ANNA_LOWER)))
    assert code == "CUSTOMER_AMBIGUOUS"
    assert "Cust000001 (Anna@Example.com), Cust000002 (anna@example.com)" in (detail or "")


def test_customer_for_a_row_with_id_and_email() -> None:
    assert customer_for("Cust000001", "ANNA@EXAMPLE.COM", (ANNA,)) == "Cust000001"
    # The id picks one of two customers whose e-mails differ only in case.
    assert customer_for("Cust000002", "anna@example.com", (ANNA, ANNA_LOWER)) == "Cust000002"
    code, detail = _failure(customer_for("Cust000009", "anna@example.com", (ANNA,)))
    assert code == "CUSTOMER_MISMATCH"
    assert "Cust000009" in (detail or "") and "Cust000001 (Anna@Example.com)" in (detail or "")
    assert "created for either" in (detail or "")
    code, detail = _failure(customer_for("Cust000009", "nobody@example.com", ()))
    assert code == "CUSTOMER_MISMATCH" and "no customer has the e-mail nobody@example.com" in (detail or "")


def test_wallet_lookup_sorts_and_sends_sparse_fields() -> None:
    query = parse_qs(wallet_by_customers(["C1", "C2"], page=2).query)
    assert query == {
        "filter[q][customer_id_in]": ["C1,C2"],
        "include": ["customer,payment_source"],
        "fields[customer_payment_sources]": ["payment_source_token,customer,payment_source"],
        "sort": ["created_at,id"],
        "page[size]": ["25"],
        "page[number]": ["2"],
    }
    with_tokens = parse_qs(wallet_by_customers(["C1"], tokens=("tok_a", "tok_b")).query)
    assert with_tokens["filter[q][payment_source_token_in]"] == ["tok_a,tok_b"]


def test_token_filter_only_when_every_row_has_a_usable_token() -> None:
    assert token_filter(["tok_b", "tok_a", "tok_b"]) == ("tok_a", "tok_b")
    assert token_filter(["tok_a", None]) == ()  # an id-shape row: its entry has no token
    assert token_filter(["tok,a"]) == ()  # a comma would split the `_in` list
    assert token_filter([]) == ()
    long = [f"tok_{n:050d}" for n in range(MAX_TOKEN_FILTER_CHARS // 50)]
    assert token_filter(long) == ()


REQUEST = {
    "data": {
        "type": "customer_payment_sources",
        "relationships": {
            "customer": {"data": {"type": "customers", "id": "Cust000001"}},
            "payment_source": {"data": {"type": "stripe_payments", "id": "KlarnaOnly"}},
        },
    }
}


def _errors(*pointers: str) -> dict[str, object]:
    return {"errors": [{"code": "VALIDATION_ERROR", "source": {"pointer": p}} for p in pointers]}


def test_422_detail_names_the_relationship_sent() -> None:
    exact = Pairing("Cust000001", None, "stripe_payments", "KlarnaOnly")
    loose = Pairing("Cust000001", None, "stripe_payments", "KlarnaOnly", payment_source_type_given="Stripe")
    body = _errors("/data/relationships/payment_source", "/data/relationships/customer")
    assert relationship_detail("d", body, REQUEST, exact) == (
        "d [payment_source sent as stripe_payments KlarnaOnly; customer sent as customers Cust000001]"
    )
    assert "read from 'Stripe', so the id KlarnaOnly may belong to another payment type" in (
        relationship_detail("d", body, REQUEST, loose)
    )
    # The type pointer names the same relationship once; attribute errors add nothing.
    body = _errors("/data/relationships/payment_source/data/type", "/data/relationships/payment_source")
    assert (
        relationship_detail("d", body, REQUEST, exact)
        == "d [payment_source sent as stripe_payments KlarnaOnly]"
    )
    assert relationship_detail("d", _errors("/data/attributes/metadata"), REQUEST, exact) == "d"
    assert relationship_detail("d", None, REQUEST, exact) == "d"


def test_the_loose_spelling_survives_the_journal() -> None:
    loose = Pairing("Cust000001", None, "stripe_payments", "KlarnaOnly", payment_source_type_given="Stripe")
    assert Pairing.from_json(loose.to_json()) == loose
    exact = Pairing("Cust000001", None, "stripe_payments", "KlarnaOnly")
    assert "payment_source_type_given" not in exact.to_json()  # old journals read the same
