"""`importer report`: write a run's report again from the journal alone.

The journal holds every input row with its cells and outcome, so a report that was deleted, or
never written because the process was killed, can be produced without the input files and
without touching the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from importer import __version__
from importer.config import Settings
from importer.errors import PreflightError, UsageError
from importer.journal import Journal, RunInfo
from importer.models import RowStatus, statuses_for
from importer.report import print_summary, write_reports

log = structlog.get_logger("importer")


def rebuild_report(
    settings: Settings, *, journal_path: str | None, run_id: str | None, report_dir: str | None
) -> int:
    path = journal_path or settings.journal.path
    if not Path(path).is_file():
        # Journal.open would create an empty journal; a typo must not pass for "no runs".
        raise PreflightError(f"journal {path} not found; pass --journal with the journal file of the run")
    journal = Journal.open(path)
    try:
        info = _pick_run(journal, path, run_id)
        structlog.contextvars.bind_contextvars(run_id=info.run_id)
        summary = journal.run_summary(info.run_id) or recomputed_summary(journal, info)
        target = Path(report_dir) if report_dir else Path("reports") / info.run_id
        _check_writable(target)
        problems = write_reports(journal, info.run_id, target, settings.report.formats, summary)
    finally:
        journal.close()
    log.info("report.rebuilt", journal=path, report_dir=str(target), run_state=info.state)
    print_summary(summary, target, problems)
    return 0


def _pick_run(journal: Journal, path: str, run_id: str | None) -> RunInfo:
    info = journal.run_info(run_id)
    if info is not None:
        return info
    recent = journal.recent_runs(5)
    if not recent:
        raise UsageError(f"journal {path} holds no runs yet; `importer run` records them there")
    listed = ", ".join(f"{r.run_id} ({r.command}, {r.state}, {r.started_at})" for r in recent)
    raise UsageError(f"run {run_id} is not in journal {path}; the latest runs are: {listed}")


def _check_writable(path: Path) -> None:
    # The same check `run` makes before its first request, so both fail alike (exit 2).
    from importer.pipeline import ensure_writable_dir

    ensure_writable_dir(path)


def recomputed_summary(journal: Journal, info: RunInfo) -> dict[str, Any]:
    """The summary of a run that never wrote one (killed, or still running): counts only."""
    counts = {s.value: 0 for s in statuses_for(info.command)}
    for status, n in journal.count_rows(info.run_id).items():
        # pending/sending rows were never settled; iter_rows reports them the same way.
        counts[status if status in counts else RowStatus.NOT_ATTEMPTED.value] += n
    return {
        "run_id": info.run_id,
        "command": info.command,
        "importer_version": __version__,
        "started_at": info.started_at,
        "finished_at": info.finished_at,
        "run_state": info.state,
        "rows_total": sum(counts.values()),
        "counts": counts,
        "rebuilt_from_journal": True,
    }
