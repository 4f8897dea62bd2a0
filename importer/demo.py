"""`importer demo`: start the sandbox in-process, import samples/ into it, show the summary.

Nothing to configure and nothing left behind but the report: the sandbox is seeded with the
same deterministic data `samples/` was written from, runs the real `test` rate limits, and the
journal lives in a temporary folder, so every demo starts from scratch and gives the same result.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Protocol

import structlog

from importer.commands import finish, show_progress_bar
from importer.config import load_settings
from importer.pipeline import RunOptions, default_report_dir, execute
from importer.runid import new_run_id
from importer.sandbox.settings import DEMO_CUSTOMERS, DEMO_SEED, SandboxSettings
from importer.sandbox.testing import SandboxThread

log = structlog.get_logger("importer")
DEFAULT_INPUTS = ("samples/",)


class _SandboxApi(Protocol):
    @property
    def base_url(self) -> str: ...
    @property
    def auth_url(self) -> str: ...
    @property
    def client_id(self) -> str: ...
    @property
    def client_secret(self) -> str: ...


def api_overrides(sb: _SandboxApi) -> dict[str, str]:
    """The `commercelayer.*` settings that point the importer at a running sandbox."""
    return {
        "commercelayer.base_url": sb.base_url,
        "commercelayer.auth_url": sb.auth_url,
        "commercelayer.client_id": sb.client_id,
        "commercelayer.client_secret": sb.client_secret,
    }


def run_demo(args: argparse.Namespace) -> int:
    inputs = tuple(getattr(args, "inputs", None) or DEFAULT_INPUTS)
    run_id = new_run_id()
    structlog.contextvars.bind_contextvars(run_id=run_id)
    report_dir = Path(args.report_dir) if getattr(args, "report_dir", None) else default_report_dir(run_id)
    sandbox = SandboxSettings(seed=DEMO_SEED, customers=DEMO_CUSTOMERS, env="test")
    with tempfile.TemporaryDirectory(prefix="importer-demo-") as tmp, SandboxThread(sandbox) as sb:
        log.info("demo.sandbox", base_url=sb.base_url, seed=DEMO_SEED, customers=DEMO_CUSTOMERS)
        settings, _ = load_settings(
            None,
            overrides={
                **api_overrides(sb),
                "rate_limit.preset": "test",
                "journal.path": str(Path(tmp) / "journal.sqlite"),
            },
            env={},  # the demo never talks to a real organization, whatever CL_* says
        )
        options = RunOptions(
            command="run",
            inputs=inputs,
            run_id=run_id,
            report_dir=report_dir,
            progress=show_progress_bar(args),
        )
        outcome = execute(settings, options)
    return finish(outcome)  # the same closing output as `run`
