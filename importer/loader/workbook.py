"""Workbooks (.xlsx .xlsm .xls .ods): choose the sheets, find each table, stream its rows.

A sheet is read whole (calamine has no streaming reader), one sheet at a time. Hidden sheets
and hidden rows (filtered-out rows included) are skipped, with a notice naming them: the
importer reads what a person sees (README, "Input rules").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pandas as pd
import structlog
from python_calamine import SheetTypeEnum, SheetVisibleEnum

from importer.errors import SourceError
from importer.headers import REQUIREMENTS
from importer.loader.cells import excel_cell_text
from importer.loader.csvfile import log_layout
from importer.loader.formats import FileFormat, FileInfo, sha256_file
from importer.loader.header import SEARCH_ROWS, HeaderChoice, find_header
from importer.loader.layout import MAP_HINT, Skip, conflict_message, shown
from importer.loader.odsparts import ods_sheet_facts
from importer.loader.rows import Tally, emit
from importer.loader.xlsparts import xls_sheet_facts
from importer.loader.xlsxparts import SheetFacts, sheet_facts
from importer.models import SourceRow

_log = structlog.get_logger()
_HEAD_ROWS = 100 + SEARCH_ROWS + 60
_SHOWN_ROWS = 20


def read_workbook(
    path: str,
    file_format: FileFormat,
    sheets: Sequence[str] | None,
    aliases: Mapping[str, Sequence[str]],
    header_row: int | None,
    finish: Callable[[FileInfo], None],
) -> Iterator[SourceRow]:
    sha256 = sha256_file(path)
    try:
        workbook = pd.ExcelFile(path, engine="calamine")
    except Exception as exc:  # calamine raises its own types for every kind of bad file
        raise SourceError(path, _workbook_message(exc)) from exc
    with workbook:
        chosen, skipped = _choose_sheets(path, workbook.book, sheets)
        read: list[str] = []
        seen_headers: list[str] = []
        header_rows: list[int] = []
        report = False
        tally = Tally()
        for sheet in chosen:
            found = _sheet_layout(path, workbook, sheet, aliases, header_row)
            if isinstance(found, Skip):
                if sheets is not None:
                    raise SourceError(path, f"sheet {sheet!r}: {found.reason}")
                skipped.append(sheet)
                seen_headers.append(f"sheet {sheet!r}{'' if found.found[:1] == ':' else ' '}{found.found}")
                _log.warning("input.sheet_skipped", file=path, sheet=sheet, reason=found.reason)
                continue
            choice, rows = found
            log_layout(path, sheet, choice, choice.index + 1)
            read.append(sheet)
            header_rows.append(choice.index + 1)
            report = report or choice.layout.report
            facts = _facts(path, sheet, file_format)
            yield from _sheet_rows(path, sheet, choice, tally, rows, facts)
            tally.pending_blank = 0  # blank rows at the end of a sheet are not "skipped"
        if not read:
            if len(seen_headers) == 1 and "over two rows" in seen_headers[0]:
                raise SourceError(path, seen_headers[0])
            raise SourceError(
                path,
                f"no sheet has the required columns: needs {REQUIREMENTS}; found "
                f"{'; '.join(seen_headers) or 'no worksheets'} ({MAP_HINT})",
            )
    finish(
        FileInfo(
            path,
            sha256,
            file_format,
            sheets=tuple(read),
            sheets_skipped=tuple(skipped),
            rows=tally.rows,
            blank_rows=tally.blank + len(tally.totals),
            totals_rows=tuple(tally.totals),
            hidden_rows=tally.hidden,
            header_rows=tuple(header_rows),
            report=report,
        )
    )


def _facts(path: str, sheet: str, file_format: FileFormat) -> SheetFacts:
    if file_format is FileFormat.XLSX:
        return sheet_facts(path, sheet)
    if file_format is FileFormat.ODS:
        return ods_sheet_facts(path, sheet)
    return xls_sheet_facts(path, sheet)


def _choose_sheets(path: str, book: Any, sheets: Sequence[str] | None) -> tuple[list[str], list[str]]:
    """Sheets to read, and hidden sheets skipped (a person does not see them)."""
    metas = [m for m in book.sheets_metadata if m.typ == SheetTypeEnum.WorkSheet]
    names = [m.name for m in metas]
    if sheets is None:
        hidden = [m.name for m in metas if m.visible != SheetVisibleEnum.Visible]
        for name in hidden:
            _log.warning(
                "input.sheet_skipped",
                file=path,
                sheet=name,
                reason="the sheet is hidden; unhide it or name it with --sheet to read it",
            )
        return [n for n in names if n not in hidden], hidden
    chosen: list[str] = []
    for wanted in sheets:
        exact = wanted if wanted in names else None
        loose = [n for n in names if n.strip().casefold() == wanted.strip().casefold()]
        name = exact or (loose[0] if len(loose) == 1 else None)
        if name is None:
            raise SourceError(
                path, f"has no sheet named {wanted!r}; its sheets are: {', '.join(map(repr, names))}"
            )
        if name not in chosen:  # "--sheet A --sheet A" reads A once
            chosen.append(name)
    return chosen, []


def _sheet_layout(
    path: str,
    workbook: pd.ExcelFile,
    sheet: str,
    aliases: Mapping[str, Sequence[str]],
    header_row: int | None,
) -> tuple[HeaderChoice, list[list[object]]] | Skip:
    """(header, all rows) — or why the sheet cannot be read as a table."""
    try:
        frame = pd.read_excel(
            workbook, sheet_name=sheet, header=None, dtype=object, na_filter=False, keep_default_na=False
        )
    except Exception as exc:  # a damaged sheet inside an otherwise readable workbook
        raise SourceError(path, f"sheet {sheet!r} cannot be read: {exc}") from exc
    rows: list[list[object]] = frame.to_numpy(dtype=object).tolist()
    head = [
        [excel_cell_text(c)[0] for c in cells] for cells in rows[: max(_HEAD_ROWS, (header_row or 0) + 60)]
    ]
    forced = None if header_row is None else header_row - 1
    choice = find_header(head, aliases, forced=forced)
    if choice is None:
        if forced is not None:
            return Skip(
                f"--header-row {header_row}: that row is empty or past the end of the sheet", "(empty)"
            )
        return Skip("the sheet is empty", "(empty)")
    if choice.problem:
        if "over two rows" in choice.problem:
            return Skip(choice.problem, f": {choice.problem}")
        return Skip(choice.problem, f"with headers {shown(choice.layout.headers)}")
    conflict = conflict_message(choice.layout)
    if conflict:
        raise SourceError(path, f"sheet {sheet!r}: {conflict}")
    return choice, rows


def _sheet_rows(
    path: str,
    sheet: str,
    choice: HeaderChoice,
    tally: Tally,
    rows: list[list[object]],
    facts: SheetFacts,
) -> Iterator[SourceRow]:
    layout = choice.layout
    errors_by_row: dict[int, dict[int, str]] = {}
    for (row_index, column), text in facts.errors.items():
        errors_by_row.setdefault(row_index, {})[column] = text
    hidden: list[int] = []
    for index in range(choice.index + 1, len(rows)):
        values = rows[index]
        if index in facts.hidden_rows:
            if any(excel_cell_text(v)[0].strip() for v in values):
                hidden.append(index + 1)
            continue
        texts, lost = _row_texts(index, values, facts)
        row = emit(
            path,
            sheet,
            layout,
            tally,
            index + 1,
            texts,
            delimited=False,
            lost_digits=lost,
            error_cells=errors_by_row.get(index, {}),
            values=values,
        )
        if row is not None:
            yield row
    if hidden:
        tally.hidden += len(hidden)
        _log.warning(
            "input.hidden_rows_skipped",
            file=path,
            sheet=sheet,
            rows=hidden[:_SHOWN_ROWS],
            count=len(hidden),
            hint="unhide the rows (or clear the filter) to import them",
        )


def _row_texts(index: int, values: list[object], facts: SheetFacts) -> tuple[list[object], frozenset[int]]:
    """The row's cells as displayed, and the columns holding numbers that lost digits."""
    formats, displayed = facts.formats.get(index), facts.texts
    texts: list[object] = []
    lost: set[int] = set()
    for column, value in enumerate(values):
        if displayed and (index, column) in displayed:
            texts.append(displayed[(index, column)])
            continue
        if formats and isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 1e15:
            shape = formats.get(column)
            if shape is not None:
                texts.append(shape.show(float(value)))
                continue
        text, lost_digits = excel_cell_text(value)
        texts.append(text)
        if lost_digits:
            lost.add(column)
    return texts, frozenset(lost)


def _workbook_message(exc: Exception) -> str:
    if type(exc).__name__ == "PasswordError":
        return "is password-protected; remove the password in Excel and save it again"
    reason = str(exc).strip() or type(exc).__name__
    return f"is not a valid Excel workbook: {reason}; open it in Excel and save it as .xlsx"
