"""`Loader`: the input paths (files and folders) → `SourceRow`s, file by file, in order."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import structlog

from importer.errors import ConfigError, SourceError
from importer.headers import check_aliases
from importer.loader.csvfile import NotATable, read_text
from importer.loader.formats import EXTENSIONS, FileFormat, FileInfo, is_lock_file, is_spreadsheet_name
from importer.loader.workbook import read_workbook
from importer.models import SourceRow

_log = structlog.get_logger()
_NO_ALIASES: Mapping[str, Sequence[str]] = MappingProxyType({})


@dataclass
class _Progress:
    infos: list[FileInfo] = field(default_factory=list)
    blank: int = 0


class Loader:
    """Streams `SourceRow`s from files and folders, file by file, sheet by sheet, in order.

    `sheets=None` reads every visible sheet that has the required columns (others are skipped,
    recorded in `FileInfo.sheets_skipped` and logged as `input.sheet_skipped`); named sheets
    must exist and must have the required columns; naming sheets for a CSV file is an error.
    `header_row` (Excel's 1-based row number) says where the header is instead of searching
    the first 20 rows for it. In a folder, files that are not spreadsheets, and `.txt` files
    without a table header, are skipped with an `input.file_skipped` notice.
    """

    def __init__(
        self,
        inputs: Sequence[str],
        sheets: Sequence[str] | None = None,
        aliases: Mapping[str, Sequence[str]] = _NO_ALIASES,
        chunk_rows: int = 20_000,
        header_row: int | None = None,
    ) -> None:
        if chunk_rows < 1:
            raise ValueError("chunk_rows must be at least 1")
        if header_row is not None and header_row < 1:
            raise ConfigError(f"header row {header_row}: rows are numbered from 1, as in Excel")
        try:
            check_aliases(aliases)
        except ValueError as exc:
            raise ConfigError(f"config key columns: {exc}") from exc
        self.inputs = tuple(inputs)
        self.sheets = tuple(sheets) if sheets else None
        self.aliases = aliases
        self.chunk_rows = chunk_rows
        self.header_row = header_row
        self._progress = _Progress()
        self._in_folder: set[str] = set()
        self._noticed: set[str] = set()

    @property
    def file_infos(self) -> list[FileInfo]:
        """One entry per file fully read so far, in reading order."""
        return list(self._progress.infos)

    @property
    def rows_skipped_blank(self) -> int:
        return self._progress.blank

    def files(self) -> list[str]:
        """The input files in reading order; a folder contributes its spreadsheets, sorted by name."""
        found: list[str] = []
        seen: set[str] = set()
        for given in self.inputs:
            path = Path(given)
            if path.is_dir():
                candidates = self._folder(given, path)
            elif path.is_file():
                if path.suffix.lower() not in EXTENSIONS:
                    raise SourceError(
                        given,
                        f"is not a file type the importer reads ({path.suffix or 'no extension'}); "
                        "save it as .csv, .xlsx, .xls or .ods",
                    )
                candidates = [given]
            elif path.exists():
                raise SourceError(given, "is neither a regular file nor a folder")
            else:
                raise SourceError(
                    given,
                    f"does not exist; check the spelling, and that the path is relative to {Path.cwd()}",
                )
            for candidate in candidates:
                self._check_sheets(candidate)
                real = str(Path(candidate).resolve())
                if real not in seen:  # the same file given twice is read once
                    seen.add(real)
                    found.append(candidate)
        return found

    def _check_sheets(self, path: str) -> None:
        if self.sheets is not None and EXTENSIONS[Path(path).suffix.lower()] is FileFormat.CSV:
            raise SourceError(
                path,
                "is a CSV/text file, which has no sheets, but --sheet was given; "
                "drop --sheet, or give the workbook files and the CSV files in separate runs",
            )

    def _folder(self, given: str, path: Path) -> list[str]:
        entries = sorted(
            (p for p in path.iterdir() if p.is_file()), key=lambda p: (p.name.casefold(), p.name)
        )
        names = [p.name for p in entries if is_spreadsheet_name(p.name)]
        for p in entries:
            skipped = os.path.join(given, p.name)  # noqa: PTH118
            if not is_spreadsheet_name(p.name) and skipped not in self._noticed:
                self._noticed.add(skipped)  # files() runs more than once per command: say it once
                why = "a lock or system file" if is_lock_file(p.name) else "not a spreadsheet"
                _log.info("input.file_skipped", file=skipped, reason=why)
        if not names:
            raise SourceError(
                given,
                "is a folder without spreadsheet files (.csv .tsv .txt .xlsx .xlsm .xls .ods); "
                "check the folder",
            )
        # os.path.join keeps the folder exactly as typed ("./in/"), which pathlib would not.
        candidates = [os.path.join(given, name) for name in names]  # noqa: PTH118
        self._in_folder.update(c for c in candidates if c.lower().endswith(".txt"))
        return candidates

    def __iter__(self) -> Iterator[SourceRow]:
        return self.rows()

    def rows(self) -> Iterator[SourceRow]:
        """Stream every non-blank data row. Statistics restart with each call."""
        paths = self.files()
        self._progress = _Progress()
        for path in paths:
            try:
                size = Path(path).stat().st_size
            except OSError as exc:
                raise SourceError(path, f"cannot be read: {exc.strerror or exc}") from exc
            if size == 0:
                raise SourceError(path, "is empty (0 bytes); export it again with a header row")
            file_format = EXTENSIONS[Path(path).suffix.lower()]
            try:
                if file_format is FileFormat.CSV:
                    yield from self._read_text(path)
                else:
                    yield from read_workbook(
                        path, file_format, self.sheets, self.aliases, self.header_row, self._finish
                    )
            except OSError as exc:
                raise SourceError(path, f"cannot be read: {exc.strerror or exc}") from exc

    def _read_text(self, path: str) -> Iterator[SourceRow]:
        try:
            yield from read_text(path, self.aliases, self.chunk_rows, self.header_row, self._finish)
        except NotATable:
            if path not in self._in_folder:
                raise
            # A README.txt next to the exports: not a table, so not an input.
            _log.warning(
                "input.file_skipped",
                file=path,
                reason="not a table: no row among its first ones holds the required columns",
            )

    def _finish(self, info: FileInfo) -> None:
        self._progress.infos.append(info)
        self._progress.blank += info.blank_rows
        _log.info(
            "input.file_read",
            file=info.path,
            format=str(info.format),
            rows=info.rows,
            blank_rows=info.blank_rows,
            totals_rows=list(info.totals_rows),
            hidden_rows=info.hidden_rows,
            header_rows=list(info.header_rows),
            sheets=list(info.sheets),
            sheets_skipped=list(info.sheets_skipped),
            encoding=info.encoding,
            delimiter=info.delimiter,
            report=info.report,
        )
