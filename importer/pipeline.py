"""The only wiring: settings + inputs → intake → (dispatch) → report → exit code.

`validate` and `run` share everything but the dispatch step, so they report alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import structlog

from importer import __version__
from importer.config import Settings
from importer.credentials import require_credentials, with_derived_base_url
from importer.errors import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_ROWS_FAILED,
    EXIT_USAGE,
    Interrupted,
    PreflightError,
    RunAborted,
)
from importer.intake import IntakeCounts, intake
from importer.journal import Journal, RunInfo
from importer.loader import Loader
from importer.loader.formats import sha256_file
from importer.models import SUCCESS_STATUSES, RowStatus, row_where, statuses_for
from importer.problems import ProblemTally
from importer.report import write_reports
from importer.report_ahead import ReportAhead
from importer.runlock import journal_lock
from importer.validator import Defaults

log = structlog.get_logger("importer")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the command line asked for, besides the settings."""

    command: str  # "validate" | "run"
    inputs: tuple[str, ...]
    run_id: str
    report_dir: Path | None = None
    sheets: tuple[str, ...] | None = None
    header_row: int | None = None  # --header-row; wins over the config key
    dry_run: bool = False
    max_rows: int | None = None
    fail_fast: bool = False
    progress: bool = False  # a rich progress bar (TTY only)
    force: bool = False  # live limits on a test organization (identity.py)
    recreate_undone: bool = False  # create again the pairings `importer undo` deleted


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a whole command came to: its exit code, summary and report location."""

    exit_code: int
    summary: dict[str, Any]
    report_dir: Path
    message: str | None = None
    problems: ProblemTally = field(default_factory=ProblemTally)


def default_report_dir(run_id: str) -> Path:
    return Path("reports") / run_id


def ensure_writable_dir(path: Path) -> None:
    """Fail before the first request if the report cannot be written (exit 2)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise PreflightError(
            f"report dir {path} is not writable ({exc.strerror or exc}); "
            "pass --report-dir with a writable folder"
        ) from None


def inputs_fingerprint(loader: Loader, sheets: Sequence[str] | None = None) -> str:
    """Identifies "the same input" for resume: the files' names and contents, and which sheets."""
    h = hashlib.sha256()
    h.update(repr(sorted(sheets) if sheets else None).encode())
    if loader.header_row is not None:  # another header row is another reading of the same files
        h.update(f"header_row={loader.header_row}".encode())
    for path in loader.files():
        h.update(path.encode())
        h.update(sha256_file(path).encode())
    return h.hexdigest()[:24]


@contextlib.contextmanager
def _scratch_journal() -> Iterator[Journal]:
    """`validate` keeps its rows in a throw-away journal: same code path, nothing left behind."""
    with tempfile.TemporaryDirectory(prefix="importer-validate-") as tmp:
        journal = Journal.open(Path(tmp) / "rows.sqlite")
        try:
            yield journal
        finally:
            journal.close()


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def exit_code_for(counts: dict[str, int]) -> int:
    failed = sum(n for status, n in counts.items() if status not in SUCCESS_STATUSES and n)
    return EXIT_ROWS_FAILED if failed else EXIT_OK


def _base_summary(
    settings: Settings,
    opts: RunOptions,
    loader: Loader,
    counts: dict[str, int],
    started: float,
    started_at: str,
) -> dict[str, Any]:
    return {
        "run_id": opts.run_id,
        "command": opts.command,
        "importer_version": __version__,
        "started_at": started_at,
        "finished_at": _now_iso(),
        "duration_s": round(time.monotonic() - started, 3),
        "rows_total": sum(counts.values()),
        "rows_skipped_blank": loader.rows_skipped_blank,
        "counts": {s.value: counts.get(s.value, 0) for s in statuses_for(opts.command)},
        "files": [
            {
                "path": f.path,
                "sha256": f.sha256,
                "format": str(f.format),
                "sheets": list(f.sheets),
                "sheets_skipped": list(f.sheets_skipped),
                "rows": f.rows,
                "blank_rows": f.blank_rows,
                "header_rows": list(f.header_rows),
                "totals_rows": list(f.totals_rows),
                "hidden_rows": f.hidden_rows,
            }
            for f in loader.file_infos
        ],
        "config_fingerprint": settings.fingerprint(),
        "rate_limit_preset": settings.rate_limit.preset,
    }


def execute(settings: Settings, opts: RunOptions) -> CommandResult:
    """Run a whole command synchronously. Raises ImporterError for exit-2 problems found early."""
    started = time.monotonic()
    started_at = _now_iso()
    report_dir = opts.report_dir or default_report_dir(opts.run_id)
    loader = Loader(
        opts.inputs,
        sheets=opts.sheets,
        aliases=settings.column_aliases(),
        header_row=opts.header_row or settings.header_row,
    )
    loader.files()  # a missing input fails here, before an empty report dir is left behind
    defaults = Defaults(
        reference_origin=settings.defaults.reference_origin, metadata=dict(settings.defaults.metadata)
    )

    if opts.command == "validate" or opts.dry_run:
        # validate and dry runs keep their rows in a throw-away journal: same code path,
        # nothing left behind, and a dry run never marks a pairing in the real journal.
        with _report_dir_for(report_dir), _scratch_journal() as journal:
            return _execute_with(settings, opts, loader, journal, defaults, report_dir, started, started_at)
    # One run per journal: the lock is taken before the journal is read or written and before
    # any request, and held until the report is written (runlock.py). A refused run leaves
    # nothing behind, not even an empty report folder.
    with (
        journal_lock(Path(settings.journal.path), command=command_line(opts), wait_s=settings.journal.wait_s),
        _report_dir_for(report_dir),
    ):
        journal = Journal.open(settings.journal.path)
        try:
            return _execute_with(settings, opts, loader, journal, defaults, report_dir, started, started_at)
        finally:
            journal.close()


@contextlib.contextmanager
def _report_dir_for(report_dir: Path) -> Iterator[None]:
    """The report folder, made (and checked writable) before the first request; a command that
    ends with an error before writing its report (a file with no header, exit 2) removes the
    folders it made (`reports/<run-id>/`, and `reports/` if that is new too), so failed
    attempts do not leave empty folders behind."""
    made = [d for d in (report_dir, *report_dir.parents) if not d.exists()]  # deepest first
    ensure_writable_dir(report_dir)
    try:
        yield
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # not empty: a report, or anything else, is kept
                break
        raise


def command_line(opts: RunOptions) -> str:
    """What a refused second run is told the holder is doing (inputs and flags, no secrets)."""
    parts = ["importer", opts.command, *opts.inputs]
    if opts.max_rows is not None:
        parts += ["--max-rows", str(opts.max_rows)]
    if opts.fail_fast:
        parts.append("--fail-fast")
    return " ".join(parts)


RunState = Literal["finished", "interrupted", "aborted"]


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How a run ended, before its rows are counted: `state` is what the journal records
    (finished | interrupted | aborted); `exit_code` is set when the ending, not the rows' statuses,
    decides it; `message` is the closing sentence; `stats` are the dispatch's counters."""

    state: RunState = "finished"
    exit_code: int | None = None
    message: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Begun:
    """A run after its start phase: the options and report folder it goes on with (a resumed
    run takes the id of the run it resumes), and whether it resumes one."""

    opts: RunOptions
    report_dir: Path
    resumed: RunInfo | None


def _execute_with(
    settings: Settings,
    opts: RunOptions,
    loader: Loader,
    journal: Journal,
    defaults: Defaults,
    report_dir: Path,
    started: float,
    started_at: str,
) -> CommandResult:
    """The phases of a command: target, start (or resume), read the input, settle the rows,
    report. Each phase is one function below."""
    settings = _resolve_target(settings, opts)
    target = settings.commercelayer.base_url or ""
    fingerprint = inputs_fingerprint(loader, opts.sheets)
    begun = _begin(settings, opts, journal, target, fingerprint, report_dir)
    opts, run_id = begun.opts, begun.opts.run_id
    counts: IntakeCounts | None = None
    feed: Any = None  # a streaming intake (imports strategy)
    if begun.resumed is not None:
        _resume(journal, loader, begun.resumed)
    else:
        if opts.command == "run" and not opts.dry_run and journal.abandon_partial_intakes():
            log.info("run.partial_intake_dropped", reason="a run was stopped while reading its input")
        journal.start_run(run_id, command=opts.command, target=target, inputs_fingerprint=fingerprint)
        counts, feed = _read_input(settings, opts, loader, journal, defaults)
    ahead = _report_ahead(settings, opts, journal, begun)
    try:
        end = _settle(settings, opts, loader, journal, target, counts, feed, ahead)
        return _report(settings, opts, loader, journal, end, begun.report_dir, started, started_at, ahead)
    finally:
        if ahead is not None:
            ahead.close()


def _report_ahead(
    settings: Settings, opts: RunOptions, journal: Journal, begun: _Begun
) -> ReportAhead | None:
    """A renderer of the report's settled rows for a fresh `run` (report_ahead.py says when it
    is safe); it starts only if the rows go through imports."""
    if opts.command != "run" or opts.dry_run or begun.resumed is not None:
        return None
    if "xlsx" in settings.report.formats or journal.path == ":memory:":
        return None
    return ReportAhead(journal.path, opts.run_id, begun.report_dir)


def _resolve_target(settings: Settings, opts: RunOptions) -> Settings:
    """`run` needs credentials and an API; an unset base_url comes from the token."""
    if opts.command == "run":
        require_credentials(settings)
        if not settings.commercelayer.base_url:
            settings = with_derived_base_url(settings)
    return settings


def _begin(
    settings: Settings, opts: RunOptions, journal: Journal, target: str, fingerprint: str, report_dir: Path
) -> _Begun:
    """Find a run of the same inputs to resume (a real `run` only) and log `run.start`."""
    resumed = None
    if opts.command == "run" and not opts.dry_run:
        resumed = journal.resumable_run(command="run", target=target, inputs_fingerprint=fingerprint)
        if resumed is not None and not journal.has_rows(resumed.run_id):
            resumed = None
    if resumed is not None:
        # Every event of a resumed run, run.start included, carries the id its report is named for.
        opts = replace(opts, run_id=resumed.run_id)
        structlog.contextvars.bind_contextvars(run_id=resumed.run_id)
        if opts.report_dir is None:
            report_dir = default_report_dir(resumed.run_id)
            ensure_writable_dir(report_dir)
    log.info(
        "run.start",
        command=opts.command,
        inputs=list(opts.inputs),
        report_dir=str(report_dir),
        dry_run=opts.dry_run,
        resumed=resumed is not None,
    )
    log.debug("run.config", config=settings.public_dict())  # -vv: the default level shows no config
    return _Begun(opts, report_dir, resumed)


def _resume(journal: Journal, loader: Loader, resumed: RunInfo) -> None:
    """A resumed run: its rows come from the journal, as first read."""
    journal.reopen_run(resumed.run_id)
    # Re-read the files for their stats only.
    for _ in loader:
        pass
    log.info("run.resume", resumed_run_id=resumed.run_id, started_at=resumed.started_at)


def _read_input(
    settings: Settings, opts: RunOptions, loader: Loader, journal: Journal, defaults: Defaults
) -> tuple[IntakeCounts | None, Any]:
    """Read every row into the journal, or start a streaming intake (imports strategy), which
    reads the input while its first imports run (bulk/stream.py). Returns (counts, feed)."""
    run_id = opts.run_id
    feed = start_streaming_intake(settings, opts, loader, run_id, defaults)
    try:
        counts = intake(loader, journal, run_id, defaults) if feed is None else None
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (cli.py turns it into the same)
        journal.finish_run(run_id, "interrupted")  # intake not done: never resumed, dropped later
        raise Interrupted(
            "interrupted while reading the input; nothing was sent. Run the same command again"
        ) from None
    if counts is not None:
        _input_read(journal, run_id, counts, loader)
    return counts, feed


def _settle(
    settings: Settings,
    opts: RunOptions,
    loader: Loader,
    journal: Journal,
    target: str,
    counts: IntakeCounts | None,
    feed: Any,
    ahead: ReportAhead | None = None,
) -> RunEnd:
    """Give every open row its final status: `validate` says valid; too many invalid rows
    sends nothing; otherwise the rows are dispatched."""
    too_many_invalid = bool(
        counts is not None and counts.rows_total and counts.invalid_ratio > settings.max_invalid_ratio
    )
    if opts.command == "validate":
        return _validated(settings, journal, opts.run_id, counts if too_many_invalid else None)
    if too_many_invalid and counts is not None:
        return _refused_invalid(settings, journal, opts.run_id, counts)
    end = _dispatched(settings, opts, journal, target, ahead)
    if feed is not None:
        end = _stream_finished(settings, journal, opts.run_id, loader, feed, end)
    journal.mark_unsettled(
        opts.run_id, RowStatus.NOT_ATTEMPTED, "not sent: " + _why_not_sent(end.state, opts, end.stats)
    )
    return end


def _validated(settings: Settings, journal: Journal, run_id: str, too_many: IntakeCounts | None) -> RunEnd:
    """validate only ever says valid / invalid / duplicate_in_file: too many invalid rows is
    the exit code and the message (what `run` would do), not a status of the good rows."""
    journal.mark_unsettled(run_id, RowStatus.VALID, None)
    if too_many is None:
        return RunEnd()
    message = (
        f"{too_many.invalid} of {too_many.rows_total} rows are invalid ({too_many.invalid_ratio:.0%}), "
        f"more than max_invalid_ratio {settings.max_invalid_ratio:.0%}: `run` would send nothing. "
        "Fix the rows listed in failures.csv, or raise max_invalid_ratio"
    )
    return RunEnd(exit_code=EXIT_USAGE, message=message)


def _refused_invalid(settings: Settings, journal: Journal, run_id: str, counts: IntakeCounts) -> RunEnd:
    """`run` with more invalid rows than max_invalid_ratio: nothing is sent (exit 2)."""
    message = (
        f"{counts.invalid} of {counts.rows_total} rows are invalid ({counts.invalid_ratio:.0%}), "
        f"more than max_invalid_ratio {settings.max_invalid_ratio:.0%}; nothing was sent. "
        "Fix the rows listed in failures.csv, or raise max_invalid_ratio"
    )
    journal.mark_unsettled(run_id, RowStatus.NOT_ATTEMPTED, "not sent: too many invalid rows in the input")
    return RunEnd("aborted", EXIT_USAGE, message)


def _dispatched(
    settings: Settings, opts: RunOptions, journal: Journal, target: str, ahead: ReportAhead | None = None
) -> RunEnd:
    """Send the open rows (REST or imports strategy) until done, stopped by a signal, or aborted."""
    from importer.bulk import is_imports, select_dispatch  # the network side is only loaded for `run`

    run_id = opts.run_id
    stop = asyncio.Event()
    total = journal.count_open(run_id)
    dispatch = select_dispatch(settings, journal, run_id, total, dry_run=opts.dry_run)
    if ahead is not None and is_imports(dispatch):
        ahead.start()
    try:
        result = asyncio.run(
            _dispatch_with_signals(dispatch, settings, journal, run_id, target, opts, stop, total)
        )
    except RunAborted as exc:  # exit 3, or 2 for a refusal before any /api request (--force)
        return RunEnd("aborted", exc.exit_code, str(exc), dict(exc.stats))
    stats: dict[str, Any] = result.as_dict()
    if stop.is_set():
        message = "interrupted: in-flight requests finished, the rest are not_attempted; run again to resume"
        return RunEnd("interrupted", EXIT_INTERRUPTED, message, stats)
    return RunEnd(stats=stats)


def _stream_finished(
    settings: Settings, journal: Journal, run_id: str, loader: Loader, feed: Any, end: RunEnd
) -> RunEnd:
    """Read the rest of a streamed input (re-raises an input error: exit 2). Too many invalid
    rows, or a stop the stream asked for, ends the run as aborted unless it already ended."""
    read = feed.finish()
    _input_read(journal, run_id, read, loader)
    too_many = read.rows_total and read.invalid_ratio > settings.max_invalid_ratio
    if end.exit_code is not None or not (end.stats.get("stream_stop") or too_many):
        return end
    message = str(end.stats.get("stream_stop") or "") or (
        f"{read.invalid} of {read.rows_total} rows are invalid ({read.invalid_ratio:.0%}), more "
        f"than max_invalid_ratio {settings.max_invalid_ratio:.0%}; imports started while the "
        "input was read (imports.stream_intake), so the valid rows read before were sent. "
        "Fix the rows listed in failures.csv"
    )
    return RunEnd("aborted", EXIT_USAGE, message, end.stats)


def _report(
    settings: Settings,
    opts: RunOptions,
    loader: Loader,
    journal: Journal,
    end: RunEnd,
    report_dir: Path,
    started: float,
    started_at: str,
    ahead: ReportAhead | None = None,
) -> CommandResult:
    """Write the reports, record how the run ended, and choose the exit code."""
    row_counts = journal.count_rows(opts.run_id)
    summary = _base_summary(settings, opts, loader, row_counts, started, started_at)
    summary["run_state"] = end.state
    if end.message:
        summary["message"] = end.message
    if end.stats:
        summary.update(end.stats)
    rendered = ahead.take() if ahead is not None else None
    problems = write_reports(journal, opts.run_id, report_dir, settings.report.formats, summary, rendered)
    if opts.command == "run" and not opts.dry_run:
        journal.finish_run(opts.run_id, end.state, summary)
    exit_code = end.exit_code if end.exit_code is not None else exit_code_for(row_counts)
    log.info(
        "run.finish",
        exit_code=exit_code,
        counts=summary["counts"],
        report_dir=str(report_dir),
        duration_s=summary["duration_s"],
    )
    return CommandResult(exit_code, summary, report_dir, end.message, problems)


def _why_not_sent(state: str, opts: RunOptions, stats: dict[str, Any]) -> str:
    if state == "aborted":
        return "run aborted"
    if state == "interrupted":
        return "run interrupted"
    stopped_at = stats.get("fail_fast_stopped_at")
    if stopped_at:
        return f"--fail-fast stopped the run at the first failure, {where_text(stopped_at)}"
    if opts.max_rows is not None:
        return "beyond --max-rows"
    return "run stopped early"


def where_text(where: dict[str, Any]) -> str:
    """`file [sheet] row n`, as duplicate_in_file details name a row."""
    return row_where(where["file"], where.get("sheet") or "", where["row"])


def warn_header_only(loader: Loader) -> None:
    """A file (or sheet) with a header and no data rows is almost always the wrong export."""
    for info in loader.file_infos:
        if info.rows == 0:
            log.warning(
                "input.no_data_rows",
                file=info.path,
                sheets=[s for s in info.sheets if s],
                detail=f"{info.path} has a header but no data rows; is it the right file?",
            )


def _input_read(journal: Journal, run_id: str, counts: IntakeCounts, loader: Loader) -> None:
    journal.mark_intake_done(run_id)
    warn_header_only(loader)
    log.info(
        "input.read",
        rows=counts.rows_total,
        valid=counts.valid,
        invalid=counts.invalid,
        duplicate_in_file=counts.duplicate_in_file,
        rows_skipped_blank=loader.rows_skipped_blank,
    )


def start_streaming_intake(
    settings: Settings, opts: RunOptions, loader: Loader, run_id: str, defaults: Defaults
) -> Any:
    """An `IntakeFeed` for `run --strategy imports` (not dry, `imports.stream_intake`), else None."""
    if opts.command != "run" or opts.dry_run or settings.strategy != "imports":
        return None
    if not settings.imports.stream_intake:
        return None
    from importer.bulk.stream import IntakeFeed

    return IntakeFeed.start(settings.journal.path, loader, run_id, defaults)


async def _dispatch_with_signals(
    dispatch: Any,
    settings: Settings,
    journal: Journal,
    run_id: str,
    target: str,
    opts: RunOptions,
    stop: asyncio.Event,
    total: int,
) -> Any:
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, Any]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, _on_signal, stop, sig)
            installed.append((sig, previous))
        except (NotImplementedError, RuntimeError):  # not the main thread (tests, demo)
            pass
    try:
        return await dispatch(
            settings,
            journal,
            run_id,
            target=target,
            dry_run=opts.dry_run,
            max_rows=opts.max_rows,
            fail_fast=opts.fail_fast,
            stop=stop,
            total=total,
            progress_bar=opts.progress,
            force=opts.force,
            recreate_undone=opts.recreate_undone,
        )
    finally:
        for sig, previous in installed:
            loop.remove_signal_handler(sig)
            # remove_signal_handler resets to the OS default; put back cli.py's handler, so a
            # SIGTERM while the report is written still ends as a clean interrupt.
            signal.signal(sig, previous)


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        log.warning(
            "run.signal", signal=sig.name, action="finishing in-flight requests, then writing the report"
        )
    stop.set()
