"""`importer validate` on 100k rows, CSV and .xlsx, in a fresh interpreter per run: wall and CPU.

The .xlsx has what issue 9 reads from the workbook's styles: a zero-padded reference (`00000`)
and a fixed-decimal amount (`0.00`) on every row, so the number-format pass is measured on its
worst case (every row carries a digit-deciding style). `--code DIR` runs another checkout's
`importer` package; several run interleaved, best CPU of `--repeat` kept (a before/after on
one busy machine):

    python bench/read_speed.py --rows 100000
    git archive main | tar -x -C /tmp/before
    python bench/read_speed.py --code /tmp/before --code . --repeat 3
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import xlsxwriter

COMMAND = (sys.executable, "-m", "importer", "validate")
HEAD = ["Customer Email", "Payment Source Type", "Payment Source ID", "Reference", "metadata.amount"]


def _row(n: int) -> list[str]:
    return [f"user{n}@example.com", "stripe_payments", f"PSRC{n:06d}", str(n % 99999), f"{n % 1000}.5"]


def write_files(folder: Path, rows: int) -> tuple[Path, Path]:
    text = folder / "in.csv"
    with text.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEAD)
        writer.writerows(_row(n) for n in range(rows))
    book_path = folder / "in.xlsx"
    book = xlsxwriter.Workbook(str(book_path), {"constant_memory": True})
    sheet = book.add_worksheet("Data")
    padded, fixed = book.add_format({"num_format": "00000"}), book.add_format({"num_format": "0.00"})
    sheet.write_row(0, 0, HEAD)
    for n in range(rows):
        email, kind, source, ref, amount = _row(n)
        sheet.write_row(n + 1, 0, [email, kind, source])
        sheet.write_number(n + 1, 3, int(ref), padded)
        sheet.write_number(n + 1, 4, float(amount), fixed)
    book.close()
    return text, book_path


def validate(path: Path, code: str | None, out: Path) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of one `importer validate` in a child interpreter."""
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [*COMMAND, str(path), "--report-dir", str(out), "-q", "--log-format", "json"],
        env=env,
        cwd=out.parent,
        capture_output=True,
        check=False,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--code",
        action="append",
        help="directory holding the `importer` package to measure (repeatable; '.' = this checkout); "
        "several are run interleaved, so a busy machine weighs on each alike",
    )
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    codes = args.code or ["."]
    best: dict[tuple[str, str], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_files(folder, args.rows)
        print(f"rows={args.rows}")
        for attempt in range(args.repeat):
            for code in codes:
                for path in files:
                    out = folder / f"out-{len(best)}-{attempt}-{path.suffix[1:]}"
                    wall, cpu, exit_code = validate(path, None if code == "." else code, out)
                    per_row = cpu / args.rows * 1e6
                    print(
                        f"{code:16} {path.suffix:6} wall {wall:6.2f} s cpu {cpu:6.2f} s {per_row:4.0f} µs/row"
                    )
                    if exit_code != 0:
                        print(f"  exit {exit_code}")
                    key = (code, path.suffix)
                    best[key] = min(best.get(key, (wall, cpu)), (wall, cpu), key=lambda t: t[1])
        print("best of", args.repeat)
        for (code, suffix), (wall, cpu) in best.items():
            per_row = cpu / args.rows * 1e6
            print(f"{code:16} {suffix:6} wall {wall:6.2f} s cpu {cpu:6.2f} s {per_row:4.0f} µs/row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
