"""Undo of an N-row run: requests per row, then the same undo again (which must send nothing).

    python bench/undo_requests.py --rows 1000 --time-scale 0.05

Starts the sandbox as a child process (test-mode limits, windows scaled by --time-scale), runs
`python -m importer run` on a sample of N valid pairings, then `python -m importer undo RUN_ID
--yes` twice, each as a child process, and reads every figure from the sandbox's request log and
the reports' summary.json. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from _common import SandboxProcess, machine, revision

from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_SEED


def _importer(argv: list[str], cwd: Path) -> tuple[int, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "importer", *argv, "--log-format", "json", "-q"],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if proc.returncode not in (0, 1):
        sys.stderr.write(proc.stderr[-3000:])
    return proc.returncode, time.monotonic() - started


def _phase(log: list[dict[str, Any]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for e in log:
        name = "token" if e["path"] == "/oauth/token" else f"{e['method']} {e['path']}"
        counts[name] += 1
        if e["rate_limited"]:
            counts["429"] += 1
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--time-scale", type=float, default=0.05)
    ap.add_argument(
        "--gap-s",
        type=float,
        default=0.0,
        help="wait this long after the run before the undo (one average window lets the server's "
        "windows forget the run's requests, which a new process's client windows never saw)",
    )
    args = ap.parse_args()
    print(f"# {revision()} | {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-undo-") as tmp:
        work = Path(tmp)
        info = write_sample(work / "in.csv", DEMO_SEED, 20, rows=args.rows)
        scale = args.time_scale
        sandbox_args = [
            "--seed",
            str(DEMO_SEED),
            "--customers",
            str(info.customers),
            "--time-scale",
            str(scale),
        ]
        with SandboxProcess(*sandbox_args) as sb:
            config = {
                "commercelayer": {
                    "base_url": sb.base_url,
                    "auth_url": sb.auth_url,
                    "client_id": sb.client_id,
                    "client_secret": sb.client_secret,
                },
                "rate_limit": {
                    "preset": "test",
                    "burst_window_s": 10 * scale,
                    "average_window_s": 60 * scale,
                    "safety_margin_s": 0.25 * scale * 2,
                },
                "journal": {"path": str(work / "journal.sqlite")},
            }
            (work / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
            code, run_s = _importer(["run", "in.csv", "-c", "config.yaml", "--report-dir", "run"], work)
            run = json.loads((work / "run" / "summary.json").read_text())
            print(f"run: exit {code}, {run['counts']['created']} created in {run_s:.1f} s")
            if args.gap_s > 0:
                print(f"waiting {args.gap_s} s before the undo")
                time.sleep(args.gap_s)
            phases = []
            for name in ("undo", "undo-again"):
                mark = len(sb.requests_log())
                code, seconds = _importer(
                    ["undo", run["run_id"], "--yes", "-c", "config.yaml", "--report-dir", name], work
                )
                summary = json.loads((work / name / "summary.json").read_text())
                counts = _phase(sb.requests_log()[mark:])
                phases.append((name, code, seconds, summary, counts))
        rows = args.rows
        print()
        print("| undo | exit | rows | deleted | already_deleted | DELETE | GET | token | 429 | req/row | s |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for name, code, seconds, summary, counts in phases:
            deletes = counts["DELETE /api/customer_payment_sources/{id}"]
            gets = sum(n for k, n in counts.items() if k.startswith("GET /api"))
            api = deletes + gets
            print(
                f"| {name} | {code} | {summary['rows_total']} | {summary['counts']['deleted']} | "
                f"{summary['counts']['already_deleted']} | {deletes} | {gets} | {counts['token']} | "
                f"{counts['429']} | {api / rows:.3f} | {seconds:.1f} |"
            )
        print()
        print("summary.json of the first undo (figures):")
        first = phases[0][3]
        keys = ("requests", "deletes", "lookup_requests", "retries", "rate_limited", "ambiguous_outcomes",
                "throughput_rows_per_s", "duration_s")  # fmt: skip
        print(json.dumps({k: first.get(k) for k in keys}))
        print("summary.json of the second undo:", json.dumps({k: phases[1][3].get(k) for k in keys[:3]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
