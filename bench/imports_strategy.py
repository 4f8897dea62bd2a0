"""The imports strategy at scale: `importer run --strategy imports` against a sandbox process.

For each `--rates` value the sandbox (its own process, `--env live`, so live read limits on both
sides) processes each import at that many rows a second, and `python -m importer run --strategy
imports --env live` imports `--rows` fresh rows (a first migration: no existing entries). Reported:

- wall time of the whole command, and the head (process start → first import created on the
  server: reading and checking the file) and the dispatch span (first import created → exit);
- the bound: the server's processing of the chunks, `max_in_flight` (10) at a time
  (Σ over rounds of the round's largest chunk / rate), plus the read-back of one import's
  records through exports at the sandbox's `export_records_per_s`; efficiency = bound / wall
  (and bound / dispatch span, which leaves the file reading out);
- CPU of the importer process (user + sys, all phases: intake, chunking, polling, read-back,
  report) in ms per row; the sandbox's CPU apart;
- requests by kind from summary.json, and the REST lower bound for the same rows at live write
  limits (one POST a row, 200 a minute).

    python bench/imports_strategy.py --rows 100000 --rates 500 5000
"""

from __future__ import annotations

import argparse
import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from _common import SandboxProcess, machine

from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED

IN_FLIGHT = 10


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def _iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def write_rows(path: Path, rows: int, email_share: float = 0.0) -> int:
    """`rows` pairings; every 1/email_share-th row names its customer by e-mail instead of id."""
    data = generate(DEMO_SEED, 20, min_sources=rows)
    emails = {c.id: c.email for c in data.customers}
    every = round(1 / email_share) if email_share > 0 else 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["customer_id", "customer_email", "payment_source_type", "payment_source_id"])
        for i, s in enumerate(data.sources[:rows]):
            by_email = every and i % every == 0
            writer.writerow(
                ["" if by_email else s.customer_id, emails[s.customer_id] if by_email else "", s.type, s.id]
            )
    return len(data.customers)


def bound_s(rows: int, rate: float, export_rate: float, chunk: int) -> float:
    chunks = [min(chunk, rows - i) for i in range(0, rows, chunk)]
    rounds = [chunks[i : i + IN_FLIGHT] for i in range(0, len(chunks), IN_FLIGHT)]
    processing = sum(max(r) / rate for r in rounds)
    return processing + max(chunks) / export_rate


def one(rows: int, rate: float, tmp: Path, customers: int, chunk: int) -> dict[str, Any]:
    export_rate = 5000.0
    args = [
        "--env", "live", "--customers", str(customers), "--set", f"import_rows_per_s={rate}",
        "--set", f"export_records_per_s={export_rate}", "--set", "request_log_max=1000",
    ]  # fmt: skip
    with SandboxProcess(*args) as sb:
        config = tmp / f"config-{rate:g}.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "commercelayer": {
                        "base_url": sb.base_url,
                        "auth_url": sb.auth_url,
                        "client_id": sb.client_id,
                        "client_secret": sb.client_secret,
                    },
                    "rate_limit": {"preset": "live"},
                    "journal": {"path": str(tmp / f"journal-{rate:g}.sqlite")},
                    "strategy": "imports",
                    "imports": {"chunk_size": chunk},
                }
            ),
            encoding="utf-8",
        )
        config.chmod(0o600)
        report = tmp / f"report-{rate:g}"
        argv = [sys.executable, "-m", "importer", "run", str(tmp / "in.csv"), "-c", str(config)]
        argv += ["--report-dir", str(report), "--log-format", "json", "-q"]
        sandbox_cpu0 = _proc_cpu_s(sb.pid)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started_wall, started = time.time(), time.monotonic()
        code = subprocess.run(argv, stdout=subprocess.DEVNULL, check=False).returncode
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        sandbox_cpu = _proc_cpu_s(sb.pid) - sandbox_cpu0
        imports = sb.records("imports")
        created = sb.created()
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    first_import = min(_iso(i["created_at"]) for i in imports) - started_wall
    last_done = max(_iso(i["completed_at"]) for i in imports if i["completed_at"]) - started_wall
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    bound = bound_s(rows, rate, export_rate, chunk)
    return {
        "rate": rate,
        "exit": code,
        "created": created,
        "counts": {k: v for k, v in summary["counts"].items() if v},
        "wall_s": wall,
        "head_s": first_import,
        "last_import_done_s": last_done,
        "run_s": summary["duration_s"],  # execute() up to the report (no start-up, no report writing)
        "tail_s": wall - summary["duration_s"],  # interpreter start-up + writing the report
        "dispatch_s": wall - first_import,
        "bound_s": bound,
        "efficiency": bound / wall,
        "efficiency_dispatch": bound / (wall - first_import),
        "cpu_s": cpu,
        "cpu_ms_per_row": cpu / rows * 1000,
        "sandbox_cpu_s": sandbox_cpu,
        "imports": len(imports),
        "requests": summary.get("requests"),
        "imports_summary": summary.get("imports"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rates", type=float, nargs="+", default=[500.0, 5000.0])
    parser.add_argument("--chunk-size", type=int, default=10_000, help="imports.chunk_size (default 10,000)")
    parser.add_argument(
        "--email-share", type=float, default=0.0, help="share of rows naming the customer by e-mail (0..1)"
    )
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    rest_s = args.rows * 60 / 200
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-imports-") as d:
        tmp = Path(d)
        customers = write_rows(tmp / "in.csv", args.rows, args.email_share)
        for rate in args.rates:
            results.append(one(args.rows, rate, tmp, customers, args.chunk_size))
    print(
        f"\n{args.rows:,} rows ({args.email_share:.0%} by e-mail), live preset, chunks of "
        f"{args.chunk_size:,}, {IN_FLIGHT} in flight"
    )
    print(
        "| server rows/s per import | exit | created | imports | wall s | head s | last import done s "
        "| start-up + report s | dispatch s | bound s | bound/wall | bound/dispatch | importer CPU s "
        "| CPU ms/row | sandbox CPU s | requests |"
    )
    print("|" + "---|" * 16)
    for r in results:
        print(
            f"| {r['rate']:,.0f} | {r['exit']} | {r['created']:,} | {r['imports']} | {r['wall_s']:.1f} | "
            f"{r['head_s']:.1f} | {r['last_import_done_s']:.1f} | {r['tail_s']:.1f} | "
            f"{r['dispatch_s']:.1f} | {r['bound_s']:.1f} | {r['efficiency']:.2f} | "
            f"{r['efficiency_dispatch']:.2f} | {r['cpu_s']:.1f} | {r['cpu_ms_per_row']:.3f} | "
            f"{r['sandbox_cpu_s']:.1f} | {r['requests']} |"
        )
    print(
        f"\nREST lower bound for the same rows at live write limits: {rest_s:,.0f} s "
        f"({rest_s / 3600:.1f} h), pre-check look-ups not counted"
    )
    for r in results:
        print(f"\nrate {r['rate']:,.0f}: counts {r['counts']}; imports {json.dumps(r['imports_summary'])}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0 if all(r["exit"] == 0 and r["created"] == args.rows for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
