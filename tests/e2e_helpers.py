"""Helpers for the end-to-end verification suite (exactly once, crash/resume, faults, hardening,
secrets): the sandbox as a real child process that can be killed and restarted on the same port
and state file, config files written the way a user writes them, the importer's CLI run in-process
or as a child process, and read-only readers for the journal and the report.

Everything talks to 127.0.0.1 only. Every wait is bounded by a count and a time.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from importer.sandbox.process import SandboxProcess as SandboxProcess  # the tests' one launcher
from importer.sandbox.process import clean_env
from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED

CPS = "customer_payment_sources"
CREATE = "POST /api/customer_payment_sources"


# -- small utilities ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    """Poll `condition` until it holds; fail the test after `timeout_s` (bounded by count too)."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / interval_s) + 1):
        if condition():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# -- the sandbox as a child process: importer.sandbox.process.SandboxProcess ----------------------


def words(text: str) -> list[str]:
    """Command-line arguments written as one string: `words("--time-scale 0.05 --set x=1")`."""
    return text.split()


# -- config files ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Api:
    """Where the importer must go: what the sandbox printed on start."""

    base_url: str
    auth_url: str
    client_id: str
    client_secret: str


def api_of(sb: Any) -> Api:
    return Api(sb.base_url, sb.auth_url, sb.client_id, sb.client_secret)


def rate_limit_for(
    time_scale: float, burst: int, average: int, average_window_s: float = 60.0
) -> dict[str, Any]:
    """The importer's `rate_limit` section matching a sandbox started with these windows."""
    return {
        "burst": burst,
        "burst_window_s": 10.0 * time_scale,
        "average": average,
        "average_window_s": average_window_s * time_scale,
        "safety_margin_s": 0.05,
    }


def write_config(path: Path, api: Api, journal: Path, mode: int = 0o600, **sections: Any) -> Path:
    """A config.yaml as a user writes it: credentials from the sandbox's start-up lines, the
    journal in tmp, fast retries, and any section overrides (deep-merged)."""
    data: dict[str, Any] = {
        "commercelayer": {
            "base_url": api.base_url,
            "auth_url": api.auth_url,
            "client_id": api.client_id,
            "client_secret": api.client_secret,
        },
        "retry": {"max_attempts": 8, "base_delay_s": 0.02, "max_delay_s": 0.2},
        "timeouts": {"shutdown_grace_s": 5},
        "journal": {"path": str(journal)},
        "progress_interval_s": 0.5,
    }
    data = deep_merge(data, sections)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    os.chmod(path, mode)
    return path


# -- running the importer -------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


def cli(argv: Sequence[str]) -> CliResult:
    """`importer.cli.main(argv)` in-process, with stdout and stderr captured."""
    from importer.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return CliResult(code, out.getvalue(), err.getvalue())


class ImporterProc:
    """`python -m importer ARGS` as a child process; stdout/stderr go to files (no pipe stalls)."""

    def __init__(self, argv: Sequence[str], cwd: Path, name: str) -> None:
        self.out_path = cwd / f"{name}.stdout"
        self.err_path = cwd / f"{name}.stderr"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "importer", *argv], cwd=cwd, env=clean_env(), stdout=out, stderr=err
            )

    def wait(self, timeout_s: float = 60.0) -> int:
        return self.proc.wait(timeout_s)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    @property
    def out(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def importer_proc(argv: Sequence[str], cwd: Path, name: str) -> Iterator[ImporterProc]:
    p = ImporterProc(argv, cwd, name)
    try:
        yield p
    finally:
        p.kill()


def run_argv(inputs: Sequence[Path], config: Path, report_dir: Path, *extra: str) -> list[str]:
    return [
        "run",
        *(str(p) for p in inputs),
        "-c",
        str(config),
        "--report-dir",
        str(report_dir),
        "--log-format",
        "json",
        *extra,
    ]


# -- the journal (read-only) and the report -------------------------------------------------------


def journal_query(path: Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]] | None:
    """Read the journal without writing it (another process may be writing); None when the file
    or its tables are not there yet or it is busy."""
    if not path.exists():
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error:
        return None
    try:
        return conn.execute(sql, tuple(params)).fetchall()
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def pairing_states(path: Path) -> dict[str, int]:
    rows = journal_query(path, "SELECT state, COUNT(*) FROM pairings GROUP BY state")
    return dict(rows or [])


def journal_pairings(path: Path) -> dict[str, str]:
    rows = journal_query(path, "SELECT pairing_key, state FROM pairings")
    return dict(rows or [])


def dump_sqlite(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def results(report_dir: Path) -> list[dict[str, str]]:
    old = csv.field_size_limit(1 << 30)  # a hostile input may have a 10 MB cell
    try:
        with open(report_dir / "results.csv", newline="", encoding="utf-8-sig") as fh:
            return list(csv.DictReader(fh))
    finally:
        csv.field_size_limit(old)


def summary(report_dir: Path) -> dict[str, Any]:
    return dict(json.loads((report_dir / "summary.json").read_text(encoding="utf-8")))


def status_counts(rows: list[dict[str, str]]) -> dict[str, int]:
    return dict(Counter(r["status"] for r in rows))


def record_key(record: Mapping[str, Any]) -> str:
    """The pairing key of a sandbox record (raw record from /_sandbox/records)."""
    if record.get("payment_source_id"):
        source = f"{record['payment_source_type']}:{record['payment_source_id']}"
    else:
        source = f"token:{record['payment_source_token']}"
    return f"id:{record['customer_id']}|{source}"


def sample_keys(rows: int, customers: int, seed: int = DEMO_SEED) -> list[str]:
    """The pairing keys of `write_sample(path, seed, customers, rows)` (pairs shape), in row order."""
    data = generate(seed, customers, min_sources=rows)
    return [f"id:{s.customer_id}|{s.type}:{s.id}" for s in data.sources[:rows]]


def create_posts(log: list[dict[str, Any]]) -> Counter[str]:
    """POST /api/customer_payment_sources answers by outcome: `201`, `commit_then_fail` (committed,
    answer lost), and the other statuses. 429s are left out: the API did not process them (a
    resumed process may start inside the server's window that a killed one filled)."""
    out: Counter[str] = Counter()
    for entry in log:
        if f"{entry['method']} {entry['path']}" != CREATE or entry["status"] == 429:
            continue
        out["commit_then_fail" if entry["fault"] == "commit_then_fail" else str(entry["status"])] += 1
    return out


def refused_posts(log: list[dict[str, Any]]) -> int:
    """POSTs the API answered 429 (not processed; the importer sends them again)."""
    return sum(1 for e in log if f"{e['method']} {e['path']}" == CREATE and e["status"] == 429)


def api_requests(log: list[dict[str, Any]]) -> int:
    return sum(1 for e in log if e["path"].startswith("/api"))


def api_call(sb: Any, method: str, path: str) -> int:
    """One raw /api call with a fresh token (urllib, no proxies); returns the HTTP status."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    body = json.dumps(
        {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret}
    ).encode()
    req = urllib.request.Request(sb.auth_url, data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    with opener.open(req, timeout=30) as response:
        token = json.loads(response.read())["access_token"]
    req = urllib.request.Request(f"{sb.base_url}{path}", method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Accept", "application/vnd.api+json")
    with opener.open(req, timeout=30) as response:
        return int(response.status)


def quiet(sb: Any, timeout_s: float = 10.0) -> None:
    """Wait until the sandbox has taken no request for a few polls (a killed client's last
    requests have been processed)."""
    last = [-1, 0]

    def still() -> bool:
        total = int(sb.stats()["requests_total"])
        last[1] = last[1] + 1 if total == last[0] else 0
        last[0] = total
        return last[1] >= 3

    wait_for(still, timeout_s, "the sandbox to go quiet", interval_s=0.1)


def write_id_pairs(path: Path, rows: int, customers: int = 20, seed: int = DEMO_SEED) -> list[str]:
    """A CSV of `rows` valid pairings naming every customer by id (no e-mail look-ups needed);
    returns their pairing keys in row order. Start the sandbox with `customers_for(rows)`."""
    data = generate(seed, customers, min_sources=rows)
    sources = data.sources[:rows]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["customer_id", "payment_source_type", "payment_source_id"])
        writer.writerows([s.customer_id, s.type, s.id] for s in sources)
    return [f"id:{s.customer_id}|{s.type}:{s.id}" for s in sources]


def customers_for(rows: int, customers: int = 20, seed: int = DEMO_SEED) -> int:
    return len(generate(seed, customers, min_sources=rows).customers)


@contextlib.contextmanager
def fire_when(
    condition: Callable[[], bool], action: Callable[[], object], timeout_s: float = 60.0
) -> Iterator[threading.Event]:
    """Run `action` once, from a helper thread, as soon as `condition` holds (polled every 20 ms,
    at most `timeout_s`). Yields the event that is set once it fired."""
    stop, fired = threading.Event(), threading.Event()

    def watch() -> None:
        for _ in range(int(timeout_s / 0.02)):
            if stop.is_set():
                return
            with contextlib.suppress(OSError):
                if condition():
                    action()
                    fired.set()
                    return
            stop.wait(0.02)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        stop.set()
        thread.join(10)


def api_json(sb: Any, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """One /api call with a JSON body over HTTP and a fresh token, as a person or another tool
    makes it; returns (status, parsed body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    token_req = urllib.request.Request(
        sb.auth_url,
        data=json.dumps(
            {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret}
        ).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with opener.open(token_req, timeout=30) as response:
        token = json.loads(response.read())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.api+json"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/vnd.api+json"
        data = json.dumps(body).encode()
    req = urllib.request.Request(f"{sb.base_url}{path}", data=data, method=method, headers=headers)
    try:
        with opener.open(req, timeout=30) as response:
            raw = response.read()
            return int(response.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def imports_config(
    sb: Any, tmp_path: Path, journal: Path, *, imports: dict[str, Any] | None = None, **sections: Any
) -> Path:
    """config.yaml for `run --strategy imports` against a sandbox process with ×0.05 windows
    (test preset limits), polling every 0.05 s; `imports` adds to or overrides that section,
    `sections` are other config sections."""
    return write_config(
        tmp_path / "config.yaml",
        api_of(sb),
        journal,
        rate_limit=rate_limit_for(0.05, 25, 100),
        strategy="imports",
        imports={"poll_interval_s": 0.05, **(imports or {})},
        **sections,
    )
