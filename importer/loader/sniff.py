"""Text files: the encoding (checked over the whole file before any row is read) and the delimiter."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import re
from dataclasses import dataclass

from importer.errors import SourceError
from importer.loader.formats import BLOCK as _BLOCK
from importer.loader.formats import known_sha256, remember_sha256

_SNIFF_CHARS = 64 * 1024
_SNIFF_RECORDS = 200
_DELIMITERS = ",;\t|"
MAX_COLUMNS = 16_384  # Excel's limit; more in a header row means the delimiter is wrong or it is not a table
_UNDEFINED_CP1252 = re.compile(rb"[\x81\x8d\x8f\x90\x9d]")
_NOT_TEXT = "is not a CSV/text file in UTF-8, UTF-16 or Windows-1252; export it again as 'CSV UTF-8'"
# First bytes of files people rename to .csv by mistake, with what to tell them.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive (an .xlsx or .ods workbook?), not a CSV/text file"),
    (b"\xd0\xcf\x11\xe0", "an old-style Office file (an .xls workbook?), not a CSV/text file"),
    (b"%PDF", "a PDF, not a CSV/text file"),
)


@dataclass(frozen=True)
class TextFacts:
    encoding: str
    delimiter: str
    sha256: str
    sep_line: bool = False  # Excel's "sep=;" first line: names the delimiter, Excel does not show it


_SEP_LINE = re.compile(r"sep=([^\r\n])\r?\n")


def inspect_text(path: str) -> TextFacts:
    """One streaming pass: hash, encoding check over the whole file, delimiter from the start.

    The whole file is decode-checked before parsing so that a stray Windows-1252 byte deep in
    a big file switches the encoding before any row is yielded.
    """
    known = known_sha256(path)  # the run's fingerprint usually hashed it already
    sha = hashlib.sha256() if known is None else None
    with open(path, "rb") as fh:
        block = fh.read(_BLOCK)
        for magic, what in _MAGIC:
            if block.startswith(magic):
                raise SourceError(path, f"is {what}; give it its real extension, or export it as 'CSV UTF-8'")
        utf16 = block.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
        decoder = codecs.getincrementaldecoder("utf-16" if utf16 else "utf-8-sig")()
        decodes, has_nul, cp1252_bad = True, False, False
        sample: str | None = None
        utf8_bom = block.startswith(codecs.BOM_UTF8)
        while block:
            if sha is not None:
                sha.update(block)
            if decodes:
                try:
                    text = decoder.decode(block)
                except UnicodeDecodeError:
                    decodes = False
                else:
                    sample = text if sample is None else sample
                    has_nul = has_nul or (utf16 and "\x00" in text)
            if not utf16:
                has_nul = has_nul or b"\x00" in block
                cp1252_bad = cp1252_bad or _UNDEFINED_CP1252.search(block) is not None
                if sample is None:
                    sample = block.decode("cp1252", errors="replace")
            block = fh.read(_BLOCK)
    if decodes:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            decodes = False
    if has_nul or (utf16 and not decodes) or (not decodes and cp1252_bad):
        raise SourceError(path, _NOT_TEXT)
    digest = sha.hexdigest() if sha is not None else str(known)
    remember_sha256(path, digest)
    if utf16:
        encoding = "utf-16"
    elif decodes:
        encoding = "utf-8-sig" if utf8_bom else "utf-8"
    else:
        encoding = "cp1252"
    sep_line = _SEP_LINE.match(sample or "")
    if sep_line:
        return TextFacts(encoding, sep_line.group(1), digest, sep_line=True)
    return TextFacts(encoding, _sniff_delimiter(path, sample or ""), digest)


def _records(sample: str, delimiter: str) -> list[list[str]]:
    """The non-blank records of the sample as `delimiter` would split them (a cut-off last one dropped)."""
    try:
        records = list(itertools.islice(csv.reader(io.StringIO(sample), delimiter=delimiter), _SNIFF_RECORDS))
    except csv.Error:
        return []
    if len(sample) >= _SNIFF_CHARS and len(records) > 1:
        records.pop()
    return [record for record in records if any(cell.strip() for cell in record)]


def _sniff_delimiter(path: str, sample: str) -> str:
    """The delimiter that splits the start of the file into the most consistent table.

    Like csv.Sniffer, but predictable: for each candidate, the header row's width and how many
    of the following records have exactly that width. A real delimiter gives the header more
    than one column and the rows the same count; decimal commas, free text or a stray `|` in
    a header name do not. The header is the record that the most later records match (a title
    or notes above the table have another width). Ties go to the wider
    header, then to the order `,` `;` tab `|`.
    """
    sample = sample[:_SNIFF_CHARS]
    best, best_score = ",", (False, -1, -1)
    for delimiter in _DELIMITERS:
        records = _records(sample, delimiter)
        if not records:
            continue
        if len(records[0]) > MAX_COLUMNS:
            raise SourceError(
                path, f"the header row has more than {MAX_COLUMNS:,} columns; is this really a table export?"
            )
        for index, head in enumerate(records):
            width = len(head)
            if index and width < 2:
                continue
            score = (width > 1, sum(1 for record in records[index + 1 :] if len(record) == width), width)
            if score > best_score:
                best, best_score = delimiter, score
    return best
