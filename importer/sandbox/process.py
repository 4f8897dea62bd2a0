"""The sandbox as a child process (`python -m importer.sandbox`), restartable on the same port.

The one launcher the tests and the benchmarks share. A server with a process (and a GIL) of its
own, as the real API has, so request arrival times are not skewed by the importer's work and
its CPU is not counted in the importer's. `kill()` is a real SIGKILL; with `state=` the records
survive it (SQLite), while stats and the request log live in memory and restart empty, so
`kill()` first keeps a snapshot in `history` and `stats_total()` sums the incarnations.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from importer.sandbox.admin_client import AdminClient
from importer.sandbox.settings import SandboxSettings

# The importer's own environment variables: a sandbox child never needs them, and a value from
# the developer's shell must not leak into what a test starts.
CL_VARS = ("CL_BASE_URL", "CL_AUTH_URL", "CL_CLIENT_ID", "CL_CLIENT_SECRET", "CL_SCOPE")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: no CL_* variable leaks in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if k not in CL_VARS}
    env.update(extra)
    return env


class SandboxProcess(AdminClient):
    """`python -m importer.sandbox --host 127.0.0.1 --port 0 ARGS` in a child process.

    A context manager (`with SandboxProcess("--customers", "5") as sb:`), or `start()` and
    `close()`. `args` are the sandbox's own command-line flags (docs/sandbox.md).
    """

    base_url: str  # set from the start-up lines; AdminClient reads it

    def __init__(self, *args: str, state: Path | None = None, log_dir: Path | None = None) -> None:
        self.args = list(args)
        self.state = state
        self.port = 0
        self.log_dir = log_dir  # each start's stderr goes to sandbox-N.stderr there, else to ours
        self.proc: subprocess.Popen[str] | None = None
        self.starts = 0
        self.history: list[dict[str, Any]] = []  # stats snapshots of killed incarnations
        self.base_url = self.auth_url = self.client_id = self.client_secret = ""
        # This machine's CLOCK_MONOTONIC when the server started, to within its start-up time:
        # the request log's `t` counts from there (the benchmarks line the two up).
        self.started_mono = 0.0

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout_s: float = 20.0) -> SandboxProcess:
        deadline = time.monotonic() + 2 * timeout_s
        for attempt in range(10):  # the port may still be held for a moment after a kill
            if self._start_once(timeout_s):
                return self
            if time.monotonic() > deadline:
                break
            time.sleep(0.1 * (attempt + 1))
        raise RuntimeError(f"the sandbox did not start on port {self.port} (args {self.args})")

    def _start_once(self, timeout_s: float) -> bool:
        cmd = [sys.executable, "-m", "importer.sandbox", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.state is not None:
            cmd += ["--state", str(self.state)]
        cmd += self.args
        self.starts += 1
        err: Any = None
        if self.log_dir is not None:
            err = open(self.log_dir / f"sandbox-{self.starts}.stderr", "w", encoding="utf-8")  # noqa: SIM115
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=clean_env())
        finally:
            if err is not None:
                err.close()
        info = _read_start_lines(proc, timeout_s)
        if info is None:
            _stop(proc)
            return False
        self.started_mono = (t0 + time.monotonic()) / 2
        self.proc = proc
        self.base_url, self.auth_url = info["base_url"], info["auth_url"]
        self.client_id, self.client_secret = info["client_id"], info["client_secret"]
        self.port = int(self.base_url.rsplit(":", 1)[1])
        return True

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the sandbox process is not running")
        return self.proc.pid

    @property
    def settings(self) -> SandboxSettings:
        """The running server's settings (every field but the client secret, which is ours)."""
        known = SandboxSettings.__dataclass_fields__
        return SandboxSettings(**{k: v for k, v in self.admin("GET", "settings").items() if k in known})

    def kill(self, snapshot: bool = True) -> None:
        """SIGKILL the server (state on disk survives; in-memory stats do not, so snapshot them)."""
        if self.proc is None:
            return
        if snapshot:
            with contextlib.suppress(OSError):
                self.history.append(self.stats())
        self.proc.send_signal(signal.SIGKILL)
        _stop(self.proc)
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """SIGKILL, stay down `down_s` seconds, start again on the same port and state file."""
        self.kill()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        if self.proc is not None:
            _stop(self.proc, graceful=True)
            self.proc = None

    def __enter__(self) -> SandboxProcess:
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- admin surface over restarts ----------------------------------------------------------
    def stats_total(self) -> dict[str, Any]:
        """Faults by kind and request counts summed over every incarnation (the current included)."""
        snapshots = [*self.history, *([self.stats()] if self.proc is not None else [])]
        faults: Counter[str] = Counter()
        requests: Counter[str] = Counter()
        tokens = 0
        for snap in snapshots:
            faults.update({k: v for k, v in snap["faults"].items() if v})
            requests["total"] += snap["requests_total"]
            requests["too_many_requests"] += snap["too_many_requests"]["total"]
            tokens += snap["tokens_issued"]
        return {"faults": dict(faults), "requests": dict(requests), "tokens_issued": tokens}


def _read_start_lines(proc: subprocess.Popen[str], timeout_s: float) -> dict[str, str] | None:
    """The four `key: value` lines the sandbox prints once it listens, or None if it exits or
    stays silent for `timeout_s` (e.g. the port is still busy)."""
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    stdout = proc.stdout

    def read_four() -> None:  # a thread: a text pipe's buffer defeats select()
        for _ in range(4):
            lines.put(stdout.readline())

    threading.Thread(target=read_four, daemon=True).start()
    info: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while len(info) < 4:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            return None
        if not line:
            return None  # exited
        key, _, value = line.strip().partition(": ")
        info[key] = value
    return info


def _stop(proc: subprocess.Popen[Any], graceful: bool = False) -> None:
    if proc.poll() is None:
        if graceful:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        else:
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()
