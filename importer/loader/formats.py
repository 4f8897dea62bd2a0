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


def sha256_file(path: str) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            sha.update(block)
    return sha.hexdigest()


def is_lock_file(name: str) -> bool:
    # "~$Book.xlsx" and ".~lock.Book.ods#" are Excel/LibreOffice lock files, not data; dot files
    # (.DS_Store) are the system's.
    return name.startswith(("~$", "."))


def is_spreadsheet_name(name: str) -> bool:
    return not is_lock_file(name) and Path(name).suffix.lower() in EXTENSIONS
