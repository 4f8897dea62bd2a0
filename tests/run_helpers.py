"""Helpers for the end-to-end dispatch tests: a sandbox on its own thread, settings that point
at it, a run through the real pipeline, and readers for what the run and the sandbox saw."""

from __future__ import annotations

import csv
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from helpers_files import write_csv as write_csv  # the run tests' CSV writer is the file tests' one

from importer.config import Settings, load_settings
from importer.demo import api_overrides
from importer.pipeline import CommandResult, RunOptions, execute
from importer.runid import new_run_id
from importer.sandbox.process import SandboxProcess
from importer.sandbox.store import CPS
from importer.sandbox.testing import SandboxThread, fast_settings


@contextmanager
def sandbox_thread(**overrides: Any) -> Iterator[SandboxThread]:
    """The sandbox (test-speed windows unless overridden) on a free 127.0.0.1 port."""
    with SandboxThread(fast_settings(**overrides)) as sb:
        yield sb


@contextmanager
def sandbox_process(*args: str) -> Iterator[SandboxProcess]:
    """The sandbox as its own process (see importer.sandbox.process): arrival times are the
    server's, not skewed by sharing this process's GIL."""
    with SandboxProcess(*args) as sb:
        yield sb


def settings_for(sb: SandboxThread | SandboxProcess, tmp_path: Path, **overrides: Any) -> Settings:
    """Importer settings whose rate windows are the sandbox's own (so they must bind)."""
    s = sb.settings
    values: dict[str, Any] = {
        **api_overrides(sb),
        "rate_limit.burst": s.burst_limit_for("uncacheable"),
        "rate_limit.burst_window_s": s.burst_window,
        "rate_limit.average": s.average_limit_for("uncacheable"),
        "rate_limit.average_window_s": s.average_window,
        # The margin covers the time from our stamp to the server's arrival stamp. A sandbox in a
        # thread of this process shares its GIL: arrivals then lag up to ~0.12 s on 2 busy cores
        # (measured). A sandbox process needs less on an idle machine, but on 2 cores shared with
        # other work its stamps lag by more than 0.05 s too (test_rate_budget.py saw it), and a
        # `rate_limited == 0` must not hang on how busy the machine is: the same margin for both.
        "rate_limit.safety_margin_s": 0.15,
        "journal.path": str(tmp_path / "journal.sqlite"),
        "retry.base_delay_s": 0.02,
        "retry.max_delay_s": 0.2,
        "timeouts.shutdown_grace_s": 2.0,
        "progress_interval_s": 0.5,
    }
    values.update(overrides)
    settings, _ = load_settings(None, overrides=values, env={})
    return settings


def run_import(settings: Settings, inputs: list[Path], report_dir: Path, **options: Any) -> CommandResult:
    opts = RunOptions(
        command="run",
        inputs=tuple(str(p) for p in inputs),
        run_id=new_run_id(),
        report_dir=report_dir,
        **options,
    )
    return execute(settings, opts)


def results(report_dir: Path) -> list[dict[str, str]]:
    with open(report_dir / "results.csv", newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def statuses(report_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for row in results(report_dir):
        counts[row["status"]] += 1
    return dict(counts)


def created_count(sb: SandboxThread) -> int:
    return len(sb.store.tables[CPS])


def duplicates(sb: SandboxThread) -> int:
    return int(sb.stats()["duplicates"]["count"])


@contextmanager
def when(
    condition: Callable[[], bool], action: Callable[[], object], timeout_s: float = 30.0
) -> Iterator[None]:
    """Run `action` once, from a helper thread, as soon as `condition` holds (polled every 10 ms)."""
    stop = threading.Event()
    fired = threading.Event()

    def watch() -> None:
        for _ in range(int(timeout_s / 0.01)):
            if stop.is_set():
                return
            if condition():
                action()
                fired.set()
                return
            stop.wait(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
    assert fired.is_set(), "the mid-run event never fired"


def window_max(
    log: list[dict[str, Any]], window_s: float, key: Callable[[dict[str, Any]], str | None]
) -> dict[str, int]:
    """From the sandbox's request log: the most *accepted* /api requests any sliding window of
    `window_s` held, per `key` (a request at t counts while now - t < window_s)."""
    groups: dict[str, list[float]] = defaultdict(list)
    for entry in log:
        if entry["rate_limited"] or entry["fault"] == "storm" or not entry["path"].startswith("/api"):
            continue
        name = key(entry)
        if name is not None:
            groups[name].append(entry["t"])
    out = {}
    for name, times in groups.items():
        times.sort()
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        out[name] = best
    return out
