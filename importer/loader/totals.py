"""Recognise a totals row ("Total", "Summe", "Totale" + sums), which is not data.

Pure. Conservative on purpose, because skipping a real row silently is the one thing worse
than failing it: a row is a totals row only when
  * exactly one cell is a totals label (the whole cell, in one of the languages below),
  * every column that identifies a customer or a payment source is empty (or holds that label),
  * every other non-empty cell is a number (an amount or a count), and at least one is.
Such a row names no customer, so it could never be imported; anything else stays a data row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from importer.models import KEY_FIELDS

LABELS = frozenset(
    {
        # en
        "total", "totals", "grand total", "sum", "subtotal", "sub-total", "sub total", "total sum",
        # de
        "summe", "gesamt", "gesamtsumme", "insgesamt", "zwischensumme", "endsumme",
        # fr
        "somme", "total général", "sous-total",
        # it
        "totale", "totale generale", "subtotale", "somma",
        # es / pt
        "suma", "total general", "soma", "total geral",
        # nl
        "totaal", "som", "subtotaal", "eindtotaal",
    }
)  # fmt: skip
# An amount or a count as people type it: 1234, 1,234.50, 1.234,50, -12, € 99, 99 EUR, 12%.
_NUMBER = re.compile(r"[-+]?(?:[€$£¥]|[A-Z]{3})?\s?[-+]?\d[\d.,' \u00a0\u202f]*(?:\s?(?:[€$£¥%]|[A-Z]{3}))?")


def _label(text: str) -> bool:
    return text.casefold().rstrip(": ").strip() in LABELS


def is_totals_row(
    raw: Mapping[str, str], fields: Mapping[str, str], columns: Mapping[str, str]
) -> str | None:
    """The label when this row is a totals row, else None. `columns`: field → raw key."""
    if len(KEY_FIELDS.intersection(fields)) > 1:
        return None  # the fast way out for every real row (`fields` holds only filled cells)
    label_key: str | None = None
    numbers = 0
    for key, text in raw.items():
        if not text:
            continue
        if _label(text):
            if label_key is not None:
                return None
            label_key = key
        elif _NUMBER.fullmatch(text):
            numbers += 1
        else:
            return None
    if label_key is None or numbers == 0:
        return None
    for name in KEY_FIELDS:
        if fields.get(name) and columns.get(name) != label_key:
            return None
    return raw[label_key]
