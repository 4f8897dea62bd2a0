"""`importer validate` side by side with a pandas baseline, on the same CSV file.

For each of `--rows` sizes (default 1,000,000) one input is written (bench/cpu_memory.py's
realistic rows: half by e-mail, half by id, every pairing distinct), then, interleaved and
`--repeat` times, each in a fresh interpreter:

- the baseline: `pandas.read_csv(dtype=str, keep_default_na=False)`, a trivial check (rows with
  neither customer column, ids that are not 10 letters/digits) and `to_csv` of the same rows;
- `importer validate FILE --report-dir DIR` for each `--code DIR` (`.` = this checkout; another
  directory, e.g. a `git archive` of main, is put first on PYTHONPATH).

CPU (user+sys of the child, from getrusage) is what is compared: the machine may be shared, and
wall time then says more about the neighbours than about the code. Peak RSS is the child's own
ru_maxrss. The best CPU of the repeats is kept for each; the ratio is importer CPU / baseline CPU.

    git archive main | tar -x -C /tmp/before
    python bench/intake_vs_pandas.py --code /tmp/before --code . --rows 1000000 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import machine
from cpu_memory import write_input

_BASELINE = """
import json, resource, sys
import pandas as pd
src, out = sys.argv[1], sys.argv[2]
frame = pd.read_csv(src, dtype=str, keep_default_na=False)
no_customer = int(((frame["Customer ID"] == "") & (frame["Customer Email"] == "")).sum())
bad_ids = int((~frame["Payment Source ID"].str.fullmatch(r"[A-Za-z0-9]{10}")).sum())
frame.to_csv(out, index=False)
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"code": 0, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kib": ru.ru_maxrss,
                  "checked": [len(frame), no_customer, bad_ids]}))
"""

_IMPORTER = """
import json, resource, sys
import importer
from importer.cli import main
code = main(sys.argv[1:])
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"code": code, "cpu": ru.ru_utime + ru.ru_stime, "maxrss_kib": ru.ru_maxrss,
                  "module": importer.__file__}))
"""


def child(script: str, args: list[str], cwd: Path, code: str | None) -> dict[str, Any]:
    """One fresh interpreter; its CPU, peak RSS and wall time. `code` goes first on PYTHONPATH."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = code
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )
    wall = time.perf_counter() - t0
    try:
        facts: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        sys.exit(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    if facts["code"] != 0:
        sys.exit(f"child exited {facts['code']}: {proc.stderr[-2000:]}")
    facts["wall"] = wall
    return facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--code", action="append", help="checkout to run (repeatable; . = this one)")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    codes: list[str] = args.code or ["."]
    print(machine())
    print(f"command: python bench/intake_vs_pandas.py {' '.join(sys.argv[1:])}\n")
    print("| rows | what | CPU s | CPU µs/row | wall s | peak RSS MiB | × baseline CPU |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for n in args.rows:
            src = tmp / f"input-{n}.csv"
            write_input(src, n)
            best: dict[str, dict[str, Any]] = {}
            for _ in range(args.repeat):
                runs: list[tuple[str, str, list[str], str | None]] = [
                    ("pandas", _BASELINE, [str(src), str(tmp / "pandas-out.csv")], None)
                ]
                for code in codes:
                    target = None if code == "." else str(Path(code).resolve())
                    report = str(tmp / "report")
                    argv = ["validate", str(src), "--report-dir", report, "--log-format", "json", "-q"]
                    runs.append((f"importer validate ({code})", _IMPORTER, argv, target))
                for label, script, argv, target in runs:
                    facts = child(script, argv, tmp, target)
                    if label not in best or facts["cpu"] < best[label]["cpu"]:
                        best[label] = facts
            base = best["pandas"]["cpu"]
            for label, f in best.items():
                ratio = "1.0" if label == "pandas" else f"{f['cpu'] / base:.1f}"
                print(
                    f"| {n:,} | {label} | {f['cpu']:.1f} | {f['cpu'] / n * 1e6:,.1f} | {f['wall']:.1f} | "
                    f"{f['maxrss_kib'] / 1024:.0f} | {ratio} |",
                    flush=True,
                )
            src.unlink()


if __name__ == "__main__":
    main()
