"""The command line: argv → Settings → logging → one call into the pipeline → exit code.

No logic lives here. Every `ImporterError` becomes one line on stderr and its exit code;
anything else is a bug and is logged with its traceback (exit 2 would hide it, so it is 70).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from importer import __version__
from importer.errors import EXIT_USAGE, ImporterError
from importer.log import configure_logging, json_mode, level_for

EXIT_BUG = 70


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="CSV/TSV/TXT/XLSX/XLSM/XLS/ODS file or folder")
    p.add_argument("-c", "--config", metavar="FILE", help="config.yaml (default: ./config.yaml if present)")
    p.add_argument(
        "--report-dir", metavar="DIR", help="where to write the report (default reports/<run-id>/)"
    )
    p.add_argument("--sheet", action="append", metavar="NAME", help="read only this sheet (repeatable)")
    p.add_argument(
        "--header-row",
        type=int,
        metavar="N",
        help="the header is row N (as Excel numbers it); default: found in the first 20 rows",
    )
    _logging_flags(p)


def _logging_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-format", choices=["json", "console"], help="default: console on a TTY, else json")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log detail (-vv for debug)")
    p.add_argument("-q", "--quiet", action="count", default=0, help="only warnings and errors")


class CommandParser(argparse.ArgumentParser):
    """A subcommand's parser whose arguments may live with the code that serves it.

    `arguments="module:function"` names a function that adds them; it is imported and called
    only when this subcommand is parsed or its help is shown (or `load_arguments()` asks), so
    `validate` and `run` never import the sandbox (its aiohttp app and seed generator) just to
    build the parser.
    """

    def __init__(self, *args: Any, arguments: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arguments = arguments

    def load_arguments(self) -> CommandParser:
        if self._arguments is not None:
            module_name, _, function = self._arguments.partition(":")
            add_arguments = getattr(importlib.import_module(module_name), function)
            self._arguments = None  # once: a second call would add every flag twice
            add_arguments(self)
        return self

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self.load_arguments()
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="importer",
        description="Load customer payment sources into Commerce Layer from CSV and Excel files.",
    )
    parser.add_argument("--version", action="version", version=f"importer {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    _common(sub.add_parser("validate", help="check input files offline and write the report"))
    _run_flags(sub.add_parser("run", help="create the pairings over the API"))
    d = sub.add_parser("demo", help="start the sandbox in-process and import samples/ into it")
    d.add_argument("inputs", nargs="*", metavar="INPUT", help="default: samples/")
    d.add_argument("--report-dir", metavar="DIR")
    _logging_flags(d)
    sub.add_parser(
        "sandbox",
        help="run the local Commerce Layer sandbox API",
        arguments="importer.sandbox.cli:add_arguments",
    )
    _undo_flags(sub.add_parser("undo", help="delete the wallet entries a run created"))
    rep = sub.add_parser("report", help="rebuild a run's report from the journal")
    rep.add_argument("--journal", metavar="PATH", help="journal file (default: journal.path from the config)")
    rep.add_argument("--run-id", metavar="ID", help="default: the newest run in the journal")
    rep.add_argument("-c", "--config", metavar="FILE")
    rep.add_argument("--report-dir", metavar="DIR", help="default reports/<run-id>/")
    _logging_flags(rep)
    return parser


def _run_flags(r: argparse.ArgumentParser) -> None:
    _common(r)
    r.add_argument("--dry-run", action="store_true", help="validate and look up, create nothing")
    r.add_argument(
        "--env",
        choices=["test", "live"],
        help="rate-limit preset (overrides rate_limit.preset; default: what the access token says)",
    )
    r.add_argument(
        "--force", action="store_true", help="use live limits even when the token is for a test organization"
    )
    r.add_argument("--max-rows", type=int, metavar="N", help="canary: import only the first N valid rows")
    r.add_argument("--fail-fast", action="store_true", help="stop at the first failed row")
    r.add_argument(
        "--strategy",
        choices=["rest", "imports", "auto"],
        help="one POST a row (rest), the Imports API (imports), or by row count (auto); overrides strategy",
    )
    r.add_argument(
        "--no-readback",
        action="store_true",
        help="imports strategy: do not read back the ids of imports that completed without errors",
    )
    _wait_flag(r)
    r.add_argument(
        "--on-existing",
        choices=["skip", "update"],
        help="an entry that exists: leave it (skip, default) or update what differs (update)",
    )
    r.add_argument(
        "--recreate-undone",
        action="store_true",
        help="create again the pairings `importer undo` deleted (default: skipped, and said so)",
    )


def _undo_flags(u: argparse.ArgumentParser) -> None:
    u.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the run to undo, from the journal")
    u.add_argument(
        "--results", metavar="PATH", help="undo the run reported in this results.csv (no journal needed)"
    )
    u.add_argument("-c", "--config", metavar="FILE", help="config.yaml (default: ./config.yaml if present)")
    u.add_argument(
        "--report-dir", metavar="DIR", help="where to write the report (default reports/<run-id>/)"
    )
    u.add_argument(
        "--dry-run", action="store_true", help="check and list what would be deleted, delete nothing"
    )
    u.add_argument(
        "--yes", action="store_true", help="do not ask for confirmation (needed without a terminal)"
    )
    u.add_argument("--env", choices=["test", "live"], help="rate-limit preset (overrides rate_limit.preset)")
    _wait_flag(u)
    _logging_flags(u)


def _wait_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="if another run holds the journal, wait up to this long for it (journal.wait_s)",
    )


def _config_path(args: argparse.Namespace) -> str | None:
    if getattr(args, "config", None):
        return str(args.config)
    return "config.yaml" if Path("config.yaml").is_file() else None


GC_THRESHOLD = 100_000  # allocations between young-generation collections (default 700)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage and the problem
        return int(exc.code or 0) if exc.code in (0, None) else EXIT_USAGE
    if args.command == "sandbox":
        from importer.sandbox.cli import run as run_sandbox

        return run_sandbox(args)
    # Hundreds of thousands of rows are held as small objects at once (chunks, outcomes, report
    # lines) and almost none form cycles: at the default threshold (700 allocations) the
    # cyclic collector ran over all of them again and again. Measured on 100,000 rows with
    # --strategy imports: 16.6 -> 13.7 s of CPU.
    gc.set_threshold(GC_THRESHOLD, 50, 1000)
    previous = _sigterm_as_interrupt()
    try:
        return _dispatch_command(args)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _sigterm_as_interrupt() -> Any:
    """SIGTERM (a scheduler stopping the job) means what Ctrl-C means: stop cleanly, exit 130.
    The run's own async phase installs loop handlers on top of this one."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def _dispatch_command(args: argparse.Namespace) -> int:
    configure_logging(fmt=args.log_format, level=level_for(args.verbose, args.quiet), verbose=args.verbose)
    log = structlog.get_logger("importer")
    try:
        from importer import commands

        handler: Any = getattr(commands, f"cmd_{args.command}")
        return int(handler(args, _config_path(args)))
    except ImporterError as exc:
        # An expected, explained failure: the message is the whole story, a traceback would bury it.
        log.error("run.error", error=str(exc), exit_code=exc.exit_code)  # noqa: TRY400
        _say(f"importer: error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        log.warning("run.interrupted", exit_code=130)
        _say("importer: interrupted")
        return 130
    except Exception:  # a bug: keep the traceback for the log, say so plainly
        log.exception("run.crash")
        _say("importer: internal error (a bug); the log above has the details")
        return EXIT_BUG


def _say(line: str) -> None:
    """A plain line for a person on stderr; in JSON mode the log event already said it, and
    stderr holds nothing but JSON lines."""
    if not json_mode():
        print(line, file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
