"""`importer undo`: delete the wallet entries one run created, from the journal or its results.csv.

An undo is a run of its own in the journal (command `undo`): its rows are the original run's
rows (undo_plan.py), its deletions are journaled (deleter.py), and it reports like any run
(results.csv, failures.csv, summary.json) with the undo statuses. A killed undo is resumed by
running the same command again; an undo repeated after it finished sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from importer import __version__
from importer.config import Settings
from importer.credentials import require_credentials
from importer.errors import EXIT_ABORTED, EXIT_INTERRUPTED, PreflightError, RunAborted, UsageError
from importer.journal import Journal
from importer.models import RowStatus, statuses_for
from importer.pipeline import (
    CommandResult,
    RunEnd,
    _now_iso,
    _scratch_journal,
    default_report_dir,
    ensure_writable_dir,
    exit_code_for,
)
from importer.report import write_reports
from importer.runlock import journal_lock
from importer.undo_plan import UndoRow, UndoSource, rows_from_journal, rows_from_results

log = structlog.get_logger("importer")

INTAKE_BATCH = 1000

# Asked on a terminal before anything is deleted: (rows to delete, organization) → go ahead?
Confirm = Callable[[int, str], bool]


@dataclass(frozen=True, slots=True)
class UndoOptions:
    run_id: str  # the undo's own id (a resumed undo keeps the one it started with)
    source: UndoSource
    report_dir: Path | None = None
    dry_run: bool = False
    confirm: Confirm | None = None  # None: --yes (or a dry run): no question
    progress: bool = False


def organization(settings: Settings) -> str:
    """How the confirmation names where the deletes go: the API host."""
    return urlsplit(settings.commercelayer.base_url or "").hostname or "(no base_url)"


def execute_undo(settings: Settings, opts: UndoOptions) -> CommandResult:
    require_credentials(settings)
    started, started_at = time.monotonic(), _now_iso()
    path = settings.journal.path
    if opts.source.run_id is not None and not Path(path).is_file():
        raise PreflightError(
            f"journal {path} not found, so run {opts.source.run_id} cannot be read from it; "
            "undo from the run's report instead: importer undo --results PATH/results.csv"
        )
    # Held for the whole undo (TEAM.md contract 1): a run or another undo on this journal meanwhile
    # could send a row's request twice, or delete what it just created.
    command = f"importer undo {opts.source.run_id or f'--results {opts.source.results}'}"
    # A dry run deletes nothing and writes nothing there: it only reads, like `run --dry-run`.
    lock = (
        contextlib.nullcontext()
        if opts.dry_run
        else journal_lock(Path(path), command=command, wait_s=settings.journal.wait_s)
    )
    with lock:
        ledger = Journal.open(path)
        try:
            if opts.dry_run:
                with _scratch_journal() as scratch:
                    return _undo(settings, opts, ledger, scratch, started, started_at)
            return _undo(settings, opts, ledger, ledger, started, started_at)
        finally:
            ledger.close()


def _source_rows(ledger: Journal, source: UndoSource, target: str) -> Iterator[UndoRow]:
    if source.run_id is None:
        assert source.results is not None
        return rows_from_results(source.results)
    info = ledger.run_info(source.run_id)
    if info is None or info.command != "run":
        recent = ", ".join(f"{r.run_id} ({r.command})" for r in ledger.recent_runs(5) if r.command == "run")
        raise UsageError(
            f"run {source.run_id} is not an `importer run` in journal {ledger.path}; "
            f"the latest runs are: {recent or 'none'}"
        )
    if info.target != target:
        raise UsageError(
            f"run {source.run_id} created its records in {info.target}, but commercelayer.base_url is "
            f"{target}; point the config at {info.target} to undo it"
        )
    return rows_from_journal(ledger, source.run_id)


def _count_candidates(rows: Iterator[UndoRow]) -> int:
    return sum(1 for r in rows if r[7] == "pending")


def _intake(journal: Journal, run_id: str, rows: Iterator[UndoRow]) -> None:
    batch: list[UndoRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= INTAKE_BATCH:
            journal.add_settled_rows(run_id, batch)
            batch = []
    if batch:
        journal.add_settled_rows(run_id, batch)


def _undo(
    settings: Settings, opts: UndoOptions, ledger: Journal, journal: Journal, started: float, started_at: str
) -> CommandResult:
    """The phases of an undo: begin (or resume), confirm, take the candidates in, delete, report."""
    target = settings.commercelayer.base_url or ""
    fingerprint = opts.source.fingerprint
    resumed = None
    if not opts.dry_run:
        resumed = journal.resumable_run(command="undo", target=target, inputs_fingerprint=fingerprint)
    run_id = opts.run_id if resumed is None else resumed.run_id
    if resumed is not None:
        structlog.contextvars.bind_contextvars(run_id=run_id)
        to_delete = journal.count_open_undo(run_id)
    else:
        to_delete = _count_candidates(_source_rows(ledger, opts.source, target))
    report_dir = opts.report_dir or default_report_dir(run_id)
    ensure_writable_dir(report_dir)
    _confirm(settings, opts, to_delete)
    log.info(
        "undo.start",
        undo_of=opts.source.describe(),
        report_dir=str(report_dir),
        dry_run=opts.dry_run,
        resumed=resumed is not None,
        candidates=to_delete,
        organization=organization(settings),
    )
    if resumed is not None:
        journal.reopen_run(run_id)
    else:
        journal.start_run(run_id, command="undo", target=target, inputs_fingerprint=fingerprint)
        _intake(journal, run_id, _source_rows(ledger, opts.source, target))
        journal.mark_intake_done(run_id)
    end = _delete(settings, opts, ledger, journal, run_id, target)
    return _undo_report(settings, opts, journal, run_id, report_dir, end, started, started_at)


def _confirm(settings: Settings, opts: UndoOptions, to_delete: int) -> None:
    """Ask before deleting anything (not for a dry run, nor when there is nothing to delete)."""
    asked = opts.confirm is not None and not opts.dry_run and to_delete > 0
    if asked and opts.confirm is not None and not opts.confirm(to_delete, organization(settings)):
        raise UsageError("not confirmed; nothing was deleted")


def _delete(
    settings: Settings, opts: UndoOptions, ledger: Journal, journal: Journal, run_id: str, target: str
) -> RunEnd:
    """Settle from the journal what it already knows, then send the DELETEs (deleter.py)."""
    from importer.deleter import settle_from_journal, undo_dispatch  # the network side

    open_rows = settle_from_journal(journal, ledger, run_id, target)
    stop = asyncio.Event()
    end = RunEnd()
    try:
        result = asyncio.run(
            _with_signals(
                stop,
                undo_dispatch(
                    settings,
                    journal,
                    ledger,
                    run_id,
                    target=target,
                    dry_run=opts.dry_run,
                    stop=stop,
                    total=open_rows,
                    progress_bar=opts.progress,
                ),
            )
        )
        end = RunEnd(stats=result.as_dict())
        if stop.is_set():
            message = (
                "interrupted: in-flight deletes finished, the rest are not_attempted; run again to resume"
            )
            end = RunEnd("interrupted", EXIT_INTERRUPTED, message, end.stats)
    except RunAborted as exc:
        end = RunEnd("aborted", EXIT_ABORTED, str(exc), dict(exc.stats))
    journal.mark_unsettled(run_id, RowStatus.NOT_ATTEMPTED, f"not deleted: undo {end.state}")
    return end


def _undo_report(
    settings: Settings,
    opts: UndoOptions,
    journal: Journal,
    run_id: str,
    report_dir: Path,
    end: RunEnd,
    started: float,
    started_at: str,
) -> CommandResult:
    """Write the undo's reports, record how it ended, and choose the exit code."""
    counts = journal.count_rows(run_id)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "command": "undo",
        "undo_of": opts.source.run_id or str(opts.source.results),
        "dry_run": opts.dry_run,
        "organization": organization(settings),
        "importer_version": __version__,
        "started_at": started_at,
        "finished_at": _now_iso(),
        "duration_s": round(time.monotonic() - started, 3),
        "rows_total": sum(counts.values()),
        "counts": {s.value: counts.get(s.value, 0) for s in statuses_for("undo")},
        "config_fingerprint": settings.fingerprint(),
        "rate_limit_preset": settings.rate_limit.preset,
        "run_state": end.state,
        **({"message": end.message} if end.message else {}),
        **end.stats,
    }
    problems = write_reports(journal, run_id, report_dir, settings.report.formats, summary)
    if not opts.dry_run:
        journal.finish_run(run_id, end.state, summary)
    exit_code = end.exit_code if end.exit_code is not None else exit_code_for(counts)
    log.info("undo.finish", exit_code=exit_code, counts=summary["counts"], report_dir=str(report_dir))
    return CommandResult(exit_code, summary, report_dir, end.message, problems)


async def _with_signals(stop: asyncio.Event, work: Any) -> Any:
    """SIGINT/SIGTERM stop taking rows; in-flight deletes finish (as `run`)."""
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, Any]] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous = signal.getsignal(sig)
            loop.add_signal_handler(sig, stop.set)
            installed.append((sig, previous))
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    try:
        return await work
    finally:
        for sig, previous in installed:
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous)
