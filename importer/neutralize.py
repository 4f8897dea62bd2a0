"""CSV-injection defence for values we write, and its exact inverse for values we read.

A spreadsheet runs a cell that starts with `=` `+` `-` `@`, a tab or a carriage return as a
formula (OWASP "CSV Injection"). We write such values with a leading apostrophe, which every
spreadsheet shows as plain text. The loader strips that apostrophe again, so a failures.csv we
produced and the finance team fed back carries the original values.

For the round trip to be exact for *every* text, a value that already looks escaped (one or more
apostrophes, then a formula character) is escaped once more; `unneutralize` removes exactly one
apostrophe. In Excel a typed `'=x` shows as `=x` anyway, so reading it as `=x` is what a
person sees.
"""

from __future__ import annotations

FORMULA_CHARS = frozenset("=+-@\t\r")


def _looks_escaped_or_formula(value: str) -> bool:
    """True for `'*` followed by a formula character: the values `neutralize` must escape."""
    return value.lstrip("'")[:1] in FORMULA_CHARS


def neutralize(value: str) -> str:
    """Prefix `'` to a value a spreadsheet would run as a formula; leave everything else alone."""
    if _looks_escaped_or_formula(value):
        return "'" + value
    return value


def unneutralize(value: str) -> str:
    """Undo `neutralize`: drop one leading `'` when what follows is formula-like."""
    if value[:1] == "'" and _looks_escaped_or_formula(value[1:]):
        return value[1:]
    return value
