"""Helpers shared by the benchmarks: the sandbox as a child process, and machine facts.

The sandbox runs as `python -m importer.sandbox --port 0 ...` so its CPU and memory are not
counted in the importer's, and it has a GIL of its own (as the real API would).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from importer.sandbox.admin_client import AdminClient


class SandboxProcess(AdminClient):
    """The sandbox in a child process; a context manager. `started_mono` approximates the
    sandbox's own clock origin (its request log `t` is seconds since it started), taken on this
    machine's CLOCK_MONOTONIC, which both processes share."""

    def __init__(self, *args: str) -> None:
        t0 = time.monotonic()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "importer.sandbox", "--port", "0", *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        info: dict[str, str] = {}
        for _ in range(4):
            line = self._proc.stdout.readline()
            if not line:
                self.close()
                raise RuntimeError(f"the sandbox process did not start (args {args})")
            key, _, value = line.strip().partition(": ")
            info[key] = value
        # Up to the start-up time early; the breakdown it serves is reported to 0.1 s.
        self.started_mono = (t0 + time.monotonic()) / 2
        self.base_url, self.auth_url = info["base_url"], info["auth_url"]
        self.client_id, self.client_secret = info["client_id"], info["client_secret"]

    @property
    def pid(self) -> int:
        return self._proc.pid

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(15)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def revision() -> str:
    """The commit measured, and whether importer/ differs from it (read-only git commands)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "importer"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown revision"
    return f"commit {head}" + (" + uncommitted changes under importer/" if dirty else "")


def machine() -> str:
    """One line: cores, CPU model, Python, date (UTC)."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs, {model}, Python {platform.python_version()}, "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, {revision()}"
    )
