"""The imports strategy: `--strategy rest|imports|auto` (README "Strategies").

`select_dispatch` is the one touch point with pipeline.py: it picks the dispatcher for a run,
logs the choice and its reason, and warns when a REST run would take more than 30 minutes.
"""

from __future__ import annotations

import sys
from typing import Any

import structlog

from importer.bulk.chunking import choose_strategy, imports_estimate_s, rest_estimate_s
from importer.config import Settings
from importer.journal import Journal

LONG_REST_S = 30 * 60
log = structlog.get_logger("importer")


def select_dispatch(settings: Settings, journal: Journal, run_id: str, total: int, *, dry_run: bool) -> Any:
    """The dispatch coroutine function for this run: dispatcher.dispatch or bulk.run.dispatch_imports."""
    from importer.bulk.records import BulkJournal

    choice = choose_strategy(settings.strategy, total, settings.imports.auto_threshold, dry_run=dry_run)
    if choice.strategy == "imports" and settings.on_existing == "update":
        # An import cannot PATCH what differs in entries that exist; one request a row can.
        choice = type(choice)(
            "rest", "on_existing is update: existing entries are corrected one PATCH at a time"
        )
    if not dry_run and choice.strategy == "rest" and BulkJournal(journal).unfinished(run_id):
        # Rows of an import still running on the server must never be POSTed one by one.
        choice = type(choice)("imports", "resuming imports this run had started")
    rl, imp = settings.rate_limit, settings.imports
    rest_s = rest_estimate_s(total, rl.average_limit, rl.average_window_s)
    imports_s = imports_estimate_s(
        total,
        lookup_batch=settings.lookups.wallet_batch,
        average_limit=rl.average_limit,
        average_window_s=rl.average_window_s,
        server_rows_per_s=imp.assumed_rows_per_s,
        in_flight=imp.max_in_flight,
        chunk_size=imp.chunk_size,
    )
    log.info(
        "run.strategy",
        strategy=choice.strategy,
        reason=choice.reason,
        rows=total,
        rest_estimate_s=round(rest_s, 1),
        imports_estimate_s=round(imports_s, 1),
    )
    if choice.strategy == "rest" and not dry_run and rest_s > LONG_REST_S:
        log.warning(
            "run.long",
            message=(
                f"{total} rows at {rl.average_limit} writes per {rl.average_window_s:g} s take about "
                f"{rest_s / 60:.0f} minutes over REST; --strategy imports would take about "
                f"{imports_s / 60:.1f} minutes (at an assumed {imp.assumed_rows_per_s:g} rows/s per import)"
            ),
        )
    if choice.strategy == "imports":
        from importer.bulk.run import dispatch_imports

        return dispatch_imports
    from importer.dispatcher import dispatch

    return dispatch


def is_imports(dispatch: Any) -> bool:
    """Whether `dispatch` (from select_dispatch) is the imports strategy's."""
    run = sys.modules.get("importer.bulk.run")  # loaded by select_dispatch if it chose imports
    return run is not None and dispatch is run.dispatch_imports
