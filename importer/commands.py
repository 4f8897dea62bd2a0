"""One function per subcommand: build Settings and RunOptions from argv, call the pipeline."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import structlog

from importer.config import Settings, load_settings
from importer.log import json_mode
from importer.pipeline import CommandResult, RunOptions, execute
from importer.report import FAILURES_CSV, print_summary
from importer.runid import new_run_id

log = structlog.get_logger("importer")


def _settings(args: argparse.Namespace, config_path: str | None) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "env", None):
        overrides["rate_limit.preset"] = args.env
    if getattr(args, "strategy", None):
        overrides["strategy"] = args.strategy
    if getattr(args, "no_readback", False):
        overrides["imports.readback"] = "none"
    if getattr(args, "wait", None) is not None:
        overrides["journal.wait_s"] = args.wait
    if getattr(args, "on_existing", None):
        overrides["on_existing"] = args.on_existing
    settings, warnings = load_settings(config_path, overrides=overrides)
    for w in warnings:
        log.warning("config.warning", warning=w)
    return settings


def _options(args: argparse.Namespace, command: str) -> RunOptions:
    run_id = new_run_id()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    return RunOptions(
        command=command,
        inputs=tuple(args.inputs),
        run_id=run_id,
        report_dir=Path(args.report_dir) if args.report_dir else None,
        sheets=tuple(args.sheet) if getattr(args, "sheet", None) else None,
        header_row=getattr(args, "header_row", None),
        dry_run=bool(getattr(args, "dry_run", False)),
        max_rows=getattr(args, "max_rows", None),
        fail_fast=bool(getattr(args, "fail_fast", False)),
        force=bool(getattr(args, "force", False)),
        progress=show_progress_bar(args),
        recreate_undone=bool(getattr(args, "recreate_undone", False)),
    )


def show_progress_bar(args: argparse.Namespace) -> bool:
    """The rich bar is for a person at a terminal; in JSON mode stderr is JSON lines only."""
    return sys.stderr.isatty() and not getattr(args, "quiet", 0) and not json_mode()


def finish(outcome: CommandResult) -> int:
    """The counts and grouped problems on stdout, the closing message, the exit code."""
    print_summary(outcome.summary, outcome.report_dir, outcome.problems)
    if outcome.problems.total:
        # The same groups for a log reader (and the only place they are in JSON mode's stderr).
        log.info(
            "report.problems",
            rows=outcome.problems.total,
            kinds=outcome.problems.as_list(),
            failures_csv=str(outcome.report_dir / FAILURES_CSV),
        )
    notes = outcome.problems.notes
    if notes is not None and notes.total:
        log.info("report.notes", rows=notes.total, kinds=notes.as_list())
    if outcome.message:
        if json_mode():
            log.error("run.message", message=outcome.message, exit_code=outcome.exit_code)
        else:
            print(f"importer: {outcome.message}", file=sys.stderr)
    notice = outcome.summary.get("notice")  # e.g. the imports strategy did not read back the ids
    if notice:
        if json_mode():
            log.warning("run.notice", notice=notice)
        else:
            print(f"importer: {notice}", file=sys.stderr)
    return outcome.exit_code


def cmd_validate(args: argparse.Namespace, config_path: str | None) -> int:
    settings = _settings(args, config_path)
    return finish(execute(settings, _options(args, "validate")))


def cmd_run(args: argparse.Namespace, config_path: str | None) -> int:
    settings = _settings(args, config_path)
    if args.max_rows is not None and args.max_rows < 0:
        from importer.errors import UsageError

        raise UsageError("--max-rows must be 0 or more")
    return finish(execute(settings, _options(args, "run")))


def cmd_demo(args: argparse.Namespace, config_path: str | None) -> int:
    from importer.demo import run_demo

    return run_demo(args)


def cmd_report(args: argparse.Namespace, config_path: str | None) -> int:
    from importer.rebuild import rebuild_report

    settings = _settings(args, config_path)
    return rebuild_report(settings, journal_path=args.journal, run_id=args.run_id, report_dir=args.report_dir)


def cmd_undo(args: argparse.Namespace, config_path: str | None) -> int:
    from importer.errors import UsageError
    from importer.undo import UndoOptions, execute_undo
    from importer.undo_plan import UndoSource

    if (args.run_id is None) == (args.results is None):
        raise UsageError(
            "name the run to undo: importer undo RUN_ID, or importer undo --results PATH/results.csv"
        )
    confirm = None
    if not args.yes and not args.dry_run:
        if not sys.stdin.isatty():
            # A scheduled job must never hang on a question nobody can answer.
            raise UsageError(
                "undo deletes wallet entries and asks for confirmation, but there is no terminal to ask on; "
                "pass --yes to confirm (or --dry-run to only list what would be deleted)"
            )
        confirm = _ask
    settings = _settings(args, config_path)
    run_id = new_run_id()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    source = UndoSource(run_id=args.run_id, results=Path(args.results) if args.results else None)
    opts = UndoOptions(
        run_id=run_id,
        source=source,
        report_dir=Path(args.report_dir) if args.report_dir else None,
        dry_run=bool(args.dry_run),
        confirm=confirm,
        progress=show_progress_bar(args),
    )
    return finish(execute_undo(settings, opts))


def _ask(count: int, organization: str) -> bool:
    # On stdout with input()'s prompt: in JSON mode stderr carries JSON lines only.
    print(
        f"importer undo will DELETE up to {count} wallet entries in {organization} "
        "(each only after checking its metadata.importer_key)."
    )
    try:
        answer = input("Type 'yes' to go on: ")
    except EOFError:
        return False
    return answer.strip().lower() in ("yes", "y")
