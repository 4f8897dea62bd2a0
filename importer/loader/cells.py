"""Workbook cells → the text a person sees, and the problems a cell shows on its face.

Numbers are written as Excel shows them in General format (no exponent, 15 significant
digits), unless the cell's number format decides the digits (`00000`, `0.00`, `#,##0`): then
the text is what the format displays, so a reference Excel shows as `00123` reads `00123`.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd

# What a cell shows when its formula failed. Excel writes these as text into CSV exports.
ERROR_LITERALS = frozenset(
    {
        "#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA",
        "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!", "#EXTERNAL!",
    }
)  # fmt: skip


def _number_text(value: float) -> tuple[str, bool]:
    """Digits as Excel shows them, no exponent; True when Excel has already lost digits.

    Excel keeps 15 significant digits of a number, so an integer of 16+ digits stored as a
    number cannot be trusted. Integers come from the shortest repr of the stored double (the
    value as written in the file); fractions are rounded to 15 significant digits, as Excel's
    formula bar shows them (so 0.1+0.2 reads 0.3, not 0.30000000000000004).
    """
    if not math.isfinite(value):
        return str(value), False
    if value.is_integer() or abs(value) >= 1e15:
        return str(int(Decimal(repr(value)).to_integral_value())), abs(value) >= 1e15
    return format(Decimal(f"{value:.15g}"), "f"), False


def excel_cell_text(value: object) -> tuple[str, bool]:
    """A workbook cell as the text a person sees; True when it is a number that lost digits."""
    if value is None or value is pd.NaT:
        return "", False
    if isinstance(value, str):
        return value, False
    if isinstance(value, bool):  # before numbers: bool is an int
        return ("TRUE" if value else "FALSE"), False
    if isinstance(value, numbers.Real):
        as_float = float(value)
        if math.isnan(as_float):
            return "", False
        return _number_text(as_float)
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat(), False
        return value.strftime("%Y-%m-%d %H:%M:%S"), False
    if isinstance(value, date):
        return value.isoformat(), False
    if isinstance(value, time):
        return value.strftime("%H:%M:%S"), False
    if isinstance(value, timedelta):
        return str(value), False
    return str(value), False


def json_value(value: object) -> object:
    """A workbook cell as a JSON value for a `metadata.<key>` column: numbers stay numbers,
    booleans booleans, dates ISO strings (see README, "Input rules"). Text is left to the caller."""
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        as_float = float(value)
        if not math.isfinite(as_float):
            return None
        if as_float.is_integer() and abs(as_float) < 1e15:
            return int(as_float)
        return float(f"{as_float:.15g}")  # Excel's 15 significant digits
    if isinstance(value, datetime | date | time):
        return excel_cell_text(value)[0]
    return None


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA: the column name a person sees."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def cell_error(header: str, text: str, lost_digits: bool) -> str | None:
    if lost_digits:
        return (
            f"column {header!r}: {text} was stored by Excel as a number, and Excel keeps only "
            "15 digits of a number, so digits beyond the 15th are lost; format the column as "
            "Text and re-enter the value"
        )
    if text[0] == "#" and text in ERROR_LITERALS:
        return (
            f"column {header!r}: the formula in this cell failed and shows {text}; fix the "
            "formula in the spreadsheet, or type the value in"
        )
    return None


# -- number formats -------------------------------------------------------------------------------

# Excel's built-in number formats that decide digits (ECMA-376 part 1, 18.8.30).
BUILTIN_FORMATS = {1: "0", 2: "0.00", 3: "#,##0", 4: "#,##0.00"}
# `[Red]`, `[>=100]`, quoted literals and escapes carry no digits; a bare number pattern remains.
_DECORATION = re.compile(r'\[[^\]]*\]|"[^"]*"|\\.|_.|\*.')
_PATTERN = re.compile(r"(?P<int>[#0,]*0[#0,]*|#[#,]*)(?:\.(?P<dec>[0#]+))?")


@dataclass(frozen=True, slots=True)
class NumberFormat:
    """The digit-deciding part of a number format: `00000` → 5 integer digits, `0.00` → 2 decimals."""

    int_digits: int
    decimals: int
    optional_decimals: int
    grouping: bool

    def show(self, value: float) -> str:
        sign = "-" if value < 0 else ""
        places = self.decimals + self.optional_decimals
        if not places and not self.grouping and value.is_integer():  # `00000`: the common case
            digits = str(int(abs(value))).rjust(self.int_digits, "0")
            return sign + digits if value else digits
        # The shortest repr is the value as written in the file; only when it has more decimals
        # than the format shows is it rounded, half away from zero as Excel does.
        written = repr(abs(value))
        whole, _, fraction = written.partition(".")
        if fraction.rstrip("0") == "":
            fraction = ""
        if "e" in written or len(fraction) > places:
            exact = Decimal(written).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
            whole, _, fraction = format(exact, "f").partition(".")
        else:
            fraction = fraction.ljust(places, "0")
        if self.optional_decimals:
            fraction = fraction.rstrip("0").ljust(self.decimals, "0")
        whole = whole.lstrip("0").rjust(self.int_digits, "0")
        if self.grouping:
            whole = f"{int(whole or '0'):,}".rjust(len(whole), "0") if whole else whole
        text = whole + (f".{fraction}" if fraction else "")
        if sign and text.strip("0.,"):
            return sign + text
        return text


def number_format(code: str) -> NumberFormat | None:
    """The format's digit rules when it decides digits; None for General, dates, text, percent …"""
    section = _DECORATION.sub("", code.split(";", 1)[0]).strip()
    match = _PATTERN.fullmatch(section)
    if match is None:
        return None
    whole, dec = match.group("int"), match.group("dec") or ""
    found = NumberFormat(
        int_digits=whole.count("0"),
        decimals=len(dec) - len(dec.lstrip("0")),
        optional_decimals=dec.count("#"),
        grouping="," in whole,
    )
    if found == NumberFormat(1, 0, 0, False):
        return None  # "0" shows an integer exactly as General does
    return found
