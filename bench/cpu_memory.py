"""CPU per row and peak memory of the importer as the input grows.

1. `importer validate` (offline) at each of `--sizes` rows;
2. `importer run` against the sandbox at each of `--run-sizes` rows, with the rate limits
   raised out of the way on both sides (burst and average 1,000,000), so the run goes as fast as
   the importer and the sandbox can: this is the importer's own CPU per row.

Every measurement is a fresh interpreter running the real CLI (`importer.cli.main`), so its peak
RSS (ru_maxrss) is its own, not the largest so far, and its CPU is its own user+sys (all its
threads). The sandbox runs as a separate process (`python -m importer.sandbox --port 0 --set
...`): its CPU is reported next to the importer's, never in it. Each child runs in a temporary
directory, so no ./config.yaml is picked up.

A 1-row run of the same command is measured first as the fixed cost (interpreter start,
imports, for `run` the token): "net µs/row" is (CPU − that) / rows. Writes Markdown tables.

    python bench/cpu_memory.py                                   # validate 10k/100k/1M, run 5k/50k
    python bench/cpu_memory.py --sizes 10000 --run-sizes 5000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import SandboxProcess, machine

from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_CUSTOMERS, DEMO_SEED

TYPES = ["stripe_payments", "adyen_payments", "braintree_payments", "wire_transfers", "paypal_payments"]
RAISED = 1_000_000  # burst and average limits for the `run` measurement: never binding


def _id(rng: random.Random) -> str:
    return "".join(rng.choices(string.ascii_letters + string.digits, k=10))


def write_input(path: Path, rows: int, seed: int = 7) -> None:
    """Realistic rows for `validate`: half by email, half by id; every pairing distinct."""
    rng = random.Random(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["Customer ID", "Customer Email", "Payment Source Type", "Payment Source ID", "Reference"])
        for i in range(rows):
            by_email = i % 2 == 0
            w.writerow(
                [
                    "" if by_email else _id(rng),
                    f"customer.{i}@example.com" if by_email else "",
                    rng.choice(TYPES),
                    _id(rng),
                    f"INV-{i:08d}",
                ]
            )


_CHILD = """
import json, resource, sys
from importer.cli import main
code = main(sys.argv[1:])
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"code": code, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kib": ru.ru_maxrss}))
"""


class Options:
    timeout_s: float | None = None


def run_child(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any] | None:
    """One fresh interpreter running the CLI; its CPU, peak RSS and wall time (None: timed out)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, *args, "--log-format", "json", "-q"],
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            env=env,
            timeout=Options.timeout_s,
        )
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - t0
    try:
        facts = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        sys.exit(f"{args[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    if facts["code"] != 0:
        sys.exit(f"{args[0]} exited {facts['code']}: {proc.stderr[-2000:]}")
    facts["wall"] = wall
    return dict(facts)


def _summary(report_dir: Path) -> dict[str, Any]:
    return dict(json.loads((report_dir / "summary.json").read_text()))


def bench_validate(sizes: list[int], tmp: Path) -> None:
    print("\n### `importer validate`\n")
    print("| rows | input MB | wall s | CPU s | CPU µs/row | net CPU µs/row | peak RSS MiB | valid rows |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    base_cpu = 0.0
    for n in [1, *sorted(sizes)]:
        path = tmp / f"input-{n}.csv"
        write_input(path, n)
        report = tmp / f"validate-report-{n}"
        f = run_child(["validate", str(path), "--report-dir", str(report)], cwd=tmp)
        if f is None:
            print(
                f"| {n:,} | {path.stat().st_size / 1e6:.1f} | did not finish in {Options.timeout_s:g} s "
                "(killed) | | | | | |",
                flush=True,
            )
            path.unlink()
            continue
        valid = _summary(report)["counts"]["valid"]
        if n == 1:
            base_cpu = f["cpu"]
        net = (f["cpu"] - base_cpu) / n * 1e6 if n > 1 else float("nan")
        print(
            f"| {n:,} | {path.stat().st_size / 1e6:.1f} | {f['wall']:.1f} | {f['cpu']:.2f} | "
            f"{f['cpu'] / n * 1e6:,.0f} | {'–' if n == 1 else f'{net:,.0f}'} | "
            f"{f['maxrss_kib'] / 1024:.0f} | {valid:,} |",
            flush=True,
        )
        path.unlink()


def _proc_cpu_s(pid: int) -> float:
    """user+sys CPU seconds of a live process, from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_run(sizes: list[int], tmp: Path) -> None:
    print(f"\n### `importer run` against the sandbox process, limits raised to {RAISED:,} (both sides)\n")
    print(
        "| rows | wall s | rows/s | importer CPU s | CPU µs/row | net CPU µs/row | importer peak RSS MiB | "
        "sandbox CPU s | requests | statuses |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    base_cpu = 0.0
    for n in [1, *sorted(sizes)]:
        work = tmp / f"run-{n}"
        work.mkdir()
        info = write_sample(work / "input.csv", DEMO_SEED, DEMO_CUSTOMERS, rows=n)
        config = work / "config.yaml"
        config.write_text(
            "rate_limit:\n"
            f"  burst: {RAISED}\n  average: {RAISED}\n"
            f"journal:\n  path: {work / 'journal.sqlite'}\n"
        )
        with SandboxProcess(
            "--customers",
            str(info.customers),
            "--seed",
            str(DEMO_SEED),
            "--set",
            f"burst_limit={RAISED}",
            "--set",
            f"average_limit={RAISED}",
        ) as sb:
            env = {
                **os.environ,
                "CL_BASE_URL": sb.base_url,
                "CL_AUTH_URL": sb.auth_url,
                "CL_CLIENT_ID": sb.client_id,
                "CL_CLIENT_SECRET": sb.client_secret,
            }
            sandbox_cpu0 = _proc_cpu_s(sb.pid)
            report = work / "report"
            f = run_child(
                ["run", str(work / "input.csv"), "-c", str(config), "--report-dir", str(report)],
                cwd=work,
                env=env,
            )
            sandbox_cpu = _proc_cpu_s(sb.pid) - sandbox_cpu0
            if f is None:
                print(
                    f"| {n:,} | did not finish in {Options.timeout_s:g} s (killed) | | | | | | "
                    f"{sandbox_cpu:.1f} | | |",
                    flush=True,
                )
                continue
            duplicates = sb.stats()["duplicates"]["count"]
        s = _summary(report)
        statuses = ", ".join(f"{k} {v:,}" for k, v in s["counts"].items() if v)
        if duplicates:
            statuses += f", DUPLICATES {duplicates}"
        if n == 1:
            base_cpu = f["cpu"]
        net = (f["cpu"] - base_cpu) / n * 1e6
        print(
            f"| {n:,} | {f['wall']:.1f} | {n / f['wall']:,.0f} | {f['cpu']:.2f} | "
            f"{f['cpu'] / n * 1e6:,.0f} | {'–' if n == 1 else f'{net:,.0f}'} | "
            f"{f['maxrss_kib'] / 1024:.0f} | {sandbox_cpu:.1f} | "
            f"{s.get('requests', 0):,} | {statuses} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--sizes",
        type=int,
        nargs="*",
        default=[10_000, 100_000, 1_000_000],
        help="rows for `validate` (none: skip)",
    )
    ap.add_argument(
        "--run-sizes",
        type=int,
        nargs="*",
        default=[5_000, 50_000],
        help="rows for `run` against the sandbox (none: skip)",
    )
    ap.add_argument("--timeout", type=float, help="kill a measurement after this many seconds")
    args = ap.parse_args()
    Options.timeout_s = args.timeout
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        if args.sizes:
            bench_validate(args.sizes, Path(tmp))
        if args.run_sizes:
            bench_run(args.run_sizes, Path(tmp))


if __name__ == "__main__":
    main()
