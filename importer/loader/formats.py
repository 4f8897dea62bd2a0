"""Which files the loader reads, and what it tells the rest of the importer about each one."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

BLOCK = 1 << 20


class FileFormat(StrEnum):
    CSV = "csv"
    XLSX = "xlsx"
    XLS = "xls"
    ODS = "ods"


EXTENSIONS: Mapping[str, FileFormat] = MappingProxyType(
    {
        ".csv": FileFormat.CSV,
        ".tsv": FileFormat.CSV,
        ".txt": FileFormat.CSV,
        ".xlsx": FileFormat.XLSX,
        ".xlsm": FileFormat.XLSX,
        ".xls": FileFormat.XLS,
        ".ods": FileFormat.ODS,
    }
)


@dataclass(frozen=True)
class FileInfo:
    """What was read from one input file.

    `rows` counts the data rows yielded (0 for a file with a header and no data: the console
    warns about it). `blank_rows` counts blank rows between data rows plus totals rows (rows
    that are not data, see `totals.py`); `totals_rows` and `hidden_rows` say which of the
    skipped rows were what. `header_rows` is the Excel row number of each table's header, in
    sheet order (one entry for a CSV file). `report` is True for an importer report
    (failures.csv) fed back as input.
    """

    path: str
    sha256: str
    format: FileFormat
    encoding: str | None = None
    delimiter: str | None = None
    sheets: tuple[str, ...] = ()
    sheets_skipped: tuple[str, ...] = ()
    rows: int = 0
    blank_rows: int = 0
    totals_rows: tuple[int, ...] = ()
    hidden_rows: int = 0
    header_rows: tuple[int, ...] = ()
    report: bool = False


# A run hashes each input for its resume fingerprint before the loader reads it, and the report
# names the same digest: one hash a file, remembered while the file is unchanged (path, size and
# mtime). Bounded, like everything a run keeps per file.
_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGESTS_KEPT = 1024


def _file_key(path: str) -> tuple[str, int, int]:
    file = Path(path).resolve()
    st = file.stat()
    return str(file), st.st_size, st.st_mtime_ns


def known_sha256(path: str) -> str | None:
    """The digest already taken of this file as it is now, if any."""
    return _DIGESTS.get(_file_key(path))


def remember_sha256(path: str, digest: str) -> None:
    if len(_DIGESTS) >= _DIGESTS_KEPT:
        _DIGESTS.clear()
    _DIGESTS[_file_key(path)] = digest


def sha256_file(path: str) -> str:
    known = known_sha256(path)
    if known is not None:
        return known
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            sha.update(block)
    digest = sha.hexdigest()
    remember_sha256(path, digest)
    return digest


def is_lock_file(name: str) -> bool:
    # "~$Book.xlsx" and ".~lock.Book.ods#" are Excel/LibreOffice lock files, not data; dot files
    # (.DS_Store) are the system's.
    return name.startswith(("~$", "."))


def is_spreadsheet_name(name: str) -> bool:
    return not is_lock_file(name) and Path(name).suffix.lower() in EXTENSIONS
