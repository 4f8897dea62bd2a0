"""neutralize/unneutralize: OWASP CSV-injection escaping and its exact inverse."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.neutralize import FORMULA_CHARS, neutralize, unneutralize


@pytest.mark.parametrize("value", ["=1+1", "+49 30 1234", "-5", "@SUM(A1)", "\tx", "\rx"])
def test_formula_like_values_get_an_apostrophe(value: str) -> None:
    assert neutralize(value) == "'" + value
    assert unneutralize(neutralize(value)) == value


@pytest.mark.parametrize("value", ["", "abc", "0012345678", "'quoted'", "a=b", " =x", "'", "''"])
def test_other_values_are_unchanged(value: str) -> None:
    assert neutralize(value) == value
    assert unneutralize(value) == value


def test_an_already_escaped_looking_value_is_escaped_again() -> None:
    # Otherwise "'=x" would come back as "=x" and the round trip would not be exact.
    assert neutralize("'=x") == "''=x"
    assert unneutralize("''=x") == "'=x"


def test_unneutralize_reads_a_typed_apostrophe_formula_as_the_formula_text() -> None:
    # In Excel a typed '=1+1 shows as =1+1; the loader reads what a person sees.
    assert unneutralize("'=1+1") == "=1+1"


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_round_trip_for_every_text(value: str) -> None:
    escaped = neutralize(value)
    assert unneutralize(escaped) == value
    assert escaped[:1] not in FORMULA_CHARS


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="'=+-@\t\rab", max_size=8))
def test_round_trip_on_the_tricky_alphabet(value: str) -> None:
    assert unneutralize(neutralize(value)) == value
    assert neutralize(value)[:1] not in FORMULA_CHARS
