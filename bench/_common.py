"""Helpers shared by the benchmarks: the sandbox as a child process, and machine facts.

The sandbox runs as `python -m importer.sandbox --port 0 ...` so its CPU and memory are not
counted in the importer's, and it has a GIL of its own (as the real API would).
"""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from importer.sandbox.process import SandboxProcess

__all__ = ["SandboxProcess", "machine", "revision"]


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
