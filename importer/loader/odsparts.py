"""What calamine does not tell about an .ods sheet: the text a number shows, and hidden rows.

OpenDocument keeps, for every cell, the value (`office:value`) and the text it displays
(`<text:p>`). Where a number format decides the digits (`00123`, `1.50`), the displayed text is
taken, written with a `.` decimal point; anything else (grouping, currency, dates) reads as
calamine gives it. Rows with `table:visibility="collapse"` or `"filter"` are hidden.

The content is parsed only when the file has a digit-deciding number style or a hidden row at
all (one byte scan), so an ordinary .ods costs no second pass.
"""

from __future__ import annotations

import re
import zipfile
from xml.etree import ElementTree

from importer.loader.xlsxparts import SheetFacts

_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_WORTH_A_LOOK = re.compile(
    rb'table:visibility="(?:collapse|filter)"|number:min-integer-digits="(?:[2-9]|\d\d)"'
    rb'|number:decimal-places="[1-9]"'
)
_SHOWN_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")


def _shown(value: str | None, text: str) -> str | None:
    """The displayed text when it is the same number with the format's digits, else None."""
    if value is None or not _SHOWN_NUMBER.fullmatch(text):
        return None
    dotted = text.replace(",", ".")
    try:
        same = float(dotted) == float(value)
    except ValueError:
        return None
    return dotted if same and dotted != value else None


def ods_sheet_facts(path: str, sheet: str) -> SheetFacts:
    """Displayed texts (as `SheetFacts.texts`) and hidden rows of one sheet; best effort."""
    facts = SheetFacts()
    try:
        with zipfile.ZipFile(path) as book:
            content = book.read("content.xml")
            styles = book.read("styles.xml") if "styles.xml" in book.namelist() else b""
        if not (_WORTH_A_LOOK.search(content) or _WORTH_A_LOOK.search(styles)):
            return facts
        _scan(content, sheet, facts)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, ElementTree.ParseError):
        return SheetFacts()
    return facts


def _scan(content: bytes, sheet: str, facts: SheetFacts) -> None:
    root = ElementTree.fromstring(content)
    table = next(
        (t for t in root.iter(f"{{{_TABLE}}}table") if t.get(f"{{{_TABLE}}}name") == sheet),
        None,
    )
    if table is None:
        return
    row_index = 0
    for row in table.iter(f"{{{_TABLE}}}table-row"):
        repeat = int(row.get(f"{{{_TABLE}}}number-rows-repeated", "1"))
        if row.get(f"{{{_TABLE}}}visibility") in ("collapse", "filter"):
            facts.hidden_rows.update(range(row_index, row_index + min(repeat, 1 << 16)))
        column = 0
        for cell in row:
            span = int(cell.get(f"{{{_TABLE}}}number-columns-repeated", "1"))
            if cell.get(f"{{{_OFFICE}}}value-type") == "float" and span == 1:
                text = "".join(p.text or "" for p in cell.iter(f"{{{_TEXT}}}p"))
                shown = _shown(cell.get(f"{{{_OFFICE}}}value"), text)
                if shown is not None:
                    facts.texts[(row_index, column)] = shown
            column += span
        row_index += repeat
