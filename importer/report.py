"""The reconciliation report: results.csv, failures.csv, summary.json and, on request, results.xlsx.

Rows are streamed from the journal in input order, so a report of millions of rows needs no more
memory than one page of them. Every file is written next to its final name and renamed into
place, so a reader (or a crash) never sees half a report; summary.json is renamed last, so its
presence means the other files are complete.

Spreadsheet programs run a CSV cell that starts with `=`, `+`, `-` or `@` as a formula, and
these files are opened by people in such programs: every text value of the CSV files is passed
through `neutralize()` (the loader undoes it on our own reports only, which it recognises by
their `source_*`/`error_*` columns, so failures.csv can be fed back in unchanged). results.xlsx
holds the original values: a cell written as a string is never a formula.

The column lists live in importer/columns.py.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import IO, Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from importer.columns import (
    ERROR_COLUMNS,
    FAILURE_LEAD_COLUMNS,
    REPORT_COLUMNS,
    REPORT_INPUT_FIELDS,
    failure_columns,
    is_report_column,
)
from importer.journal import Journal, RowRecord
from importer.models import SUCCESS_STATUSES, RowStatus
from importer.neutralize import neutralize
from importer.problems import ProblemTally

RESULTS_CSV = "results.csv"
FAILURES_CSV = "failures.csv"
SUMMARY_JSON = "summary.json"
RESULTS_XLSX = "results.xlsx"

# The only columns that are written to the workbook as numbers; everything else is text, so
# Excel never turns an id like 0012 or 1e5 into a number.
NUMERIC_COLUMNS = frozenset({"row_number", "http_status", "attempts"})
# results.csv is a machine contract (scheduled jobs parse its exact header): plain UTF-8.
RESULTS_ENCODING = "utf-8"
# failures.csv is for people to fix in Excel, which opens BOM-less UTF-8 as the local code page
# and mangles accents ("Müller" becomes "MÃ¼ller"); our own loader strips the BOM when it is
# fed back, so the BOM costs nothing and saves every non-ASCII name.
FAILURES_ENCODING = "utf-8-sig"
XLSX_MAX_ROWS = 1_048_576  # Excel's sheet limit, header included
XLSX_MAX_CHARS = 32_767  # Excel's cell limit
COPY_CHUNK = 1 << 20


# First characters after which `neutralize` may change a value; anything else passes as is.
_MAYBE_FORMULA = frozenset("=+-@\t\r'")


def _cell(value: Any) -> str:
    """One CSV cell: None is empty, numbers as written, text neutralized."""
    if value is None:
        return ""
    if type(value) is str:
        # The fast path matters: this runs for every cell of millions of rows.
        return value if not value or value[0] not in _MAYBE_FORMULA else neutralize(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return neutralize(str(value))


def report_line(record: RowRecord) -> dict[str, Any]:
    """One results.csv line. A valid row shows its parsed values (the type as the API
    spells it, the e-mail in lower case); an invalid one the values as they were typed."""
    if record.pairing_json:
        # The pairing's fields straight from its JSON: building the frozen dataclass for each
        # row of a million was half the report's time. A missing key is None, as the
        # dataclass's default would make it (journals written by older versions).
        p = json.loads(record.pairing_json)
        given: dict[str, Any] = {
            "customer_id": record.customer_id or p.get("customer_id"),
            "customer_email": p.get("customer_email"),
            "payment_source_type": p.get("payment_source_type"),
            "payment_source_id": p.get("payment_source_id"),
            "payment_source_token": p.get("payment_source_token"),
            "reference": p.get("reference"),
        }
    else:
        raw = record.raw
        given = {name: raw.get(name) for name in REPORT_INPUT_FIELDS}
        given["customer_id"] = record.customer_id or given["customer_id"]
    return {
        "source_file": record.source_file,
        "sheet": record.sheet,
        "row_number": record.row_number,
        "status": record.status.value,
        "customer_payment_source_id": record.customer_payment_source_id,
        **given,
        "http_status": record.http_status,
        "error_code": record.error_code,
        "error_detail": record.error_detail,
        "attempts": record.attempts,
        "changed_fields": record.changed_fields,
    }


def csv_cells(record: RowRecord) -> list[str]:
    """One results.csv line's cells, in `REPORT_COLUMNS` order: what `_cell` makes of each value
    of `report_line`, without the dict in between and with `_cell`'s common cases inline. This
    runs for every row of the run, after the last import ends: at 100,000 rows the dict and
    a call per cell were half the report's time."""
    given: tuple[Any, ...]
    if record.pairing_json:
        get = json.loads(record.pairing_json).get
        given = (
            record.customer_id or get("customer_id"),
            get("customer_email"),
            get("payment_source_type"),
            get("payment_source_id"),
            get("payment_source_token"),
            get("reference"),
        )
    else:
        get = record.raw.get
        given = (record.customer_id or get("customer_id"), *(get(n) for n in REPORT_INPUT_FIELDS[1:]))
    values = (
        record.source_file,
        record.sheet,
        record.row_number,
        record.status.value,
        record.customer_payment_source_id,
        *given,
        record.http_status,
        record.error_code,
        record.error_detail,
        record.attempts,
        record.changed_fields,
    )
    maybe = _MAYBE_FORMULA
    return [
        "" if v is None else v if type(v) is str and (not v or v[0] not in maybe) else _cell(v)
        for v in values
    ]


def is_failure(record: RowRecord) -> bool:
    return record.status not in SUCCESS_STATUSES


@contextmanager
def _atomic(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside `final`; on success flush it to disk and rename it over
    `final`, on failure remove it. The file is created with the umask's permissions, like any
    file the user makes, not mkstemp's 0600."""
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        tmp.replace(final)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise


class _XlsxResults:
    """results.xlsx in constant-memory mode: rows go straight to disk in order. A run longer than
    Excel's row limit continues on "Results 2", "Results 3", … rather than losing rows."""

    def __init__(self, path: Path, tmpdir: Path) -> None:
        import xlsxwriter  # only needed when the xlsx format is asked for

        self._book = xlsxwriter.Workbook(
            str(path),
            {
                "constant_memory": True,
                "use_zip64": True,
                # Row data is spooled beside the report, on the disk that must hold it anyway,
                # not in a /tmp that may be a small tmpfs.
                "tmpdir": str(tmpdir),
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
            },
        )
        self._bold = self._book.add_format({"bold": True})
        self._sheets = 0
        self._row = 0
        self._sheet: Any = None
        self._new_sheet()

    def _new_sheet(self) -> None:
        if self._sheet is not None:
            self._finish_sheet()
        self._sheets += 1
        name = "Results" if self._sheets == 1 else f"Results {self._sheets}"
        self._sheet = self._book.add_worksheet(name)
        self._sheet.freeze_panes(1, 0)
        for col, column in enumerate(REPORT_COLUMNS):
            self._sheet.set_column(col, col, 28 if column == "error_detail" else 16)
            self._sheet.write_string(0, col, column, self._bold)
        self._row = 0

    def _finish_sheet(self) -> None:
        self._sheet.autofilter(0, 0, max(self._row, 1), len(REPORT_COLUMNS) - 1)

    def add(self, line: dict[str, Any]) -> None:
        if self._row + 1 >= XLSX_MAX_ROWS:
            self._new_sheet()
        self._row += 1
        for col, name in enumerate(REPORT_COLUMNS):
            value = line[name]
            if value is None or value == "":
                continue
            if name in NUMERIC_COLUMNS and isinstance(value, int | float):
                self._sheet.write_number(self._row, col, value)
            else:
                # The value as it was: write_string never makes a formula (strings_to_formulas
                # is off), so the CSV files' leading ' would only show as a literal quote here.
                self._sheet.write_string(self._row, col, str(value)[:XLSX_MAX_CHARS])

    def close(self, summary: dict[str, Any]) -> None:
        self._finish_sheet()
        sheet = self._book.add_worksheet("Summary")
        sheet.set_column(0, 0, 28)
        sheet.set_column(1, 1, 48)
        for row, (key, value) in enumerate(summary_lines(summary)):
            sheet.write_string(row, 0, key, self._bold)
            if isinstance(value, int | float) and not isinstance(value, bool):
                sheet.write_number(row, 1, value)
            elif value is not None:
                sheet.write_string(row, 1, str(value)[:XLSX_MAX_CHARS])
        self._book.close()


def summary_lines(summary: dict[str, Any]) -> list[tuple[str, Any]]:
    """Flatten the summary into key/value lines: `counts.created`, `files[0].path`, …"""
    lines: list[tuple[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list | tuple) and any(isinstance(v, dict | list | tuple) for v in value):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif isinstance(value, list | tuple):
            lines.append((prefix, ", ".join(str(v) for v in value)))
        else:
            lines.append((prefix, value))

    walk("", summary)
    return lines


class Rendering:
    """One pass over a run's rows in input order: their results.csv lines (and results.xlsx
    rows), and the failing rows spooled for failures.csv with the problems they make. `add` may
    be called several times with the rows that follow, and from another thread than the one
    that finishes it (report_ahead.py renders a run's settled rows while the run goes on), as
    long as one thread at a time uses it."""

    def __init__(self, results: IO[str], spool: IO[str], book: _XlsxResults | None = None) -> None:
        self.results = results
        self._writer = csv.writer(results)
        self._writer.writerow(REPORT_COLUMNS)
        self.spool = spool  # a JSON line per failing row: failures.csv's header is known at the end
        self.book = book
        self.problems = ProblemTally()
        self.names: dict[str, None] = {}  # an ordered set: the failing rows' keys, first seen first
        self.last_seq = -1  # the last row rendered
        self.rows = 0

    def add(self, records: Iterable[RowRecord], stop: Callable[[], bool] | None = None) -> None:
        """Render `records` (rows after `last_seq`, in order); with `stop`, return early once it
        says so, between two rows."""
        writerow, book, problems, names = self._writer.writerow, self.book, self.problems, self.names
        for record in records:
            writerow(csv_cells(record))
            if book is not None:
                book.add(report_line(record))
            if record.status is RowStatus.SKIPPED and record.error_code:
                problems.note(
                    record.status.value,
                    record.error_code,
                    record.error_detail,
                    (record.source_file, record.sheet, record.row_number),
                )
            if is_failure(record):
                where = (record.source_file, record.sheet, record.row_number)
                raw = record.raw  # decoded once here, only for failing rows
                problems.add(record.status.value, record.error_code, record.error_detail, where, raw.values())
                for name in raw:
                    # A re-fed report's own columns are written afresh, not copied.
                    if name not in names and not is_report_column(name):
                        names[name] = None
                self.spool.write(
                    json.dumps([*where, raw, record.error_code, record.error_detail], ensure_ascii=False)
                    + "\n"
                )
            self.last_seq = record.seq
            self.rows += 1
            if stop is not None and stop():
                return


def write_reports(
    journal: Journal,
    run_id: str,
    report_dir: Path,
    formats: Sequence[str],
    summary: dict[str, Any],
    ahead: Rendering | None = None,
) -> ProblemTally:
    """Write every report file of `run_id` into `report_dir`, replacing earlier ones. Returns
    the failing rows grouped by kind, for the console. `ahead`: the run's first rows, rendered
    already (report_ahead.py, csv only) into temporary files; the rows after them are added."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    want_xlsx = "xlsx" in formats
    if want_xlsx:
        ahead = None  # the workbook is written in the one pass, from the first row
    with ExitStack() as stack:
        results_tmp = stack.enter_context(_atomic(report_dir / RESULTS_CSV))
        if ahead is None:
            # Failing rows are spooled to a temporary file in the one pass over the journal:
            # the failures.csv header (the union of their columns) is only known at the end.
            spool = stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8", dir=report_dir))
            results = stack.enter_context(open(results_tmp, "w", encoding=RESULTS_ENCODING, newline=""))
            book = None
            if want_xlsx:
                xlsx_tmp = stack.enter_context(_atomic(report_dir / RESULTS_XLSX))
                book = _XlsxResults(xlsx_tmp, report_dir)
                stack.callback(book.close, summary)
            rendering = Rendering(results, spool, book)
        else:
            rendering = ahead
        rendering.add(journal.iter_rows(run_id, after=rendering.last_seq))
        if ahead is not None:
            rendering.results.flush()
            rendering.results.seek(0)
            with open(results_tmp, "w", encoding=RESULTS_ENCODING, newline="") as out:
                shutil.copyfileobj(rendering.results, out, COPY_CHUNK)
        else:
            results.close()
        rendering.spool.flush()
        rendering.spool.seek(0)
        with _atomic(report_dir / FAILURES_CSV) as failures_tmp:
            _write_failures(failures_tmp, failure_columns(rendering.names), rendering.spool)
    if not want_xlsx:
        # A workbook left from an earlier write into this folder would disagree with results.csv.
        with suppress(FileNotFoundError):
            (report_dir / RESULTS_XLSX).unlink()
    with _atomic(report_dir / SUMMARY_JSON) as summary_tmp:
        summary_tmp.write_text(
            json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
    return rendering.problems


def _write_failures(path: Path, columns: list[str], spool: IO[str]) -> None:
    """failures.csv: where each failing row came from, its values under one column per field,
    and why; ready to fix and feed back. The header is written even when no row failed."""
    with open(path, "w", encoding=FAILURES_ENCODING, newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([_cell(h) for h in (*FAILURE_LEAD_COLUMNS, *columns, *ERROR_COLUMNS)])
        for line in spool:
            source_file, sheet, row_number, raw, error_code, error_detail = json.loads(line)
            writer.writerow(
                [
                    _cell(source_file),
                    _cell(sheet),
                    row_number,
                    *(_cell(raw.get(c)) for c in columns),
                    _cell(error_code),
                    _cell(error_detail),
                ]
            )


def print_summary(summary: dict[str, Any], report_dir: Path, problems: ProblemTally | None = None) -> None:
    """A short table on stdout: the non-zero counts, the totals, the problems grouped by kind,
    and where the report is.

    rich drops colours and styles by itself when stdout is not a terminal (a cron mail, a pipe).
    """
    console = Console(file=sys.stdout, highlight=False)
    title = " ".join(str(p) for p in (summary.get("command"), summary.get("run_id")) if p)
    table = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("status")
    table.add_column("rows", justify="right")
    counts: dict[str, int] = summary.get("counts") or {}
    ordered = [s.value for s in RowStatus] + sorted(set(counts) - {s.value for s in RowStatus})
    for status in ordered:
        if counts.get(status):
            table.add_row(Text(status), str(counts[status]))
    table.add_section()
    table.add_row("rows_total", str(summary.get("rows_total", sum(counts.values()))))
    table.add_row("rows_skipped_blank", str(summary.get("rows_skipped_blank", 0)))
    console.print(table)
    # Printed without wrapping or markup so the paths can be copied as is.
    if problems is not None and problems.total:
        console.print("problems:", markup=False)
        for line in problems.lines():
            console.print(f"  {line}", markup=False, soft_wrap=True)
        # Rows a stopped or refused run did not send need no fixing, only another run.
        lead = "fix them in" if problems.to_fix else "not sent; run again to send them. They are in"
        console.print(f"{lead}: {Path(report_dir) / FAILURES_CSV}", markup=False, soft_wrap=True)
    notes = problems.notes if problems is not None else None
    if notes is not None and notes.total:
        console.print("notes:", markup=False)
        for line in notes.lines():
            console.print(f"  {line}", markup=False, soft_wrap=True)
    console.print(f"report: {report_dir}{os.sep}", markup=False, soft_wrap=True)
