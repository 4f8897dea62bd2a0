"""How much of Commerce Layer's rate budget a real import uses.

Runs `importer.pipeline.execute` (the same call `importer run` makes) in this process against
the sandbox, for `--rows` rows written by `write_sample`, with the sandbox's windows and the
importer's `rate_limit` windows both scaled by `--time-scale` (the documented counts are kept:
test 25 / 10 s burst per endpoint and 100 / 60 s average, live 50 and 200).

For every run it reports, from summary.json and the sandbox's request log:
- wall time of `execute`, and the span from the first to the last accepted /api request;
- requests by kind (POSTs, e-mail look-ups, wallet look-ups, token) and 429s;
- the lower bound: with limit L per window W, the k-th request (0-based) of a window cannot be
  accepted before floor(k/L)·W after the first one. The bound is the max of that over the
  average window (every accepted /api request: they share one pool) and each endpoint's burst
  window (the POSTs' is the one that matters);
- efficiency = bound / actual, against the request span and against the whole wall time;
- rows/s against the most the bound allows (rows / bound);
- where the wall time goes: head (reading the file, token, first look-up: up to the first
  accepted request), the bound, the margin's cost (the same bound on the client's windows, each
  `safety_margin_s` longer, minus the bound), the rest of the span ("other": latency, pauses
  after 429 or X-Ratelimit-Remaining: 0, look-ups not overlapped), and tail (after the last
  request: the report);
- the most accepted requests any server window held (`/_sandbox/windows/max`) vs its limit.

Each configuration runs a first import, then (after one average window, so the server's windows
are empty again) a RERUN of the same file with a fresh journal: every row then already exists
and costs only look-ups; look-ups per 100 rows are reported for both.

    python bench/rate_efficiency.py --rows 2000 --env test --time-scale 0.05
    python bench/rate_efficiency.py --rows 300 --env live --time-scale 1 --margins default

`--margins default scaled` runs the importer with `rate_limit.safety_margin_s` at its default
(0.25 s) and at 0.25 s × time-scale. `--sandbox process` runs the sandbox as a child process
instead of a thread of this process (no shared GIL).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from _common import SandboxProcess, machine

from importer.config import load_settings
from importer.demo import api_overrides
from importer.log import configure_logging
from importer.pipeline import RunOptions, execute
from importer.runid import new_run_id
from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_CUSTOMERS, DEMO_SEED, SandboxSettings
from importer.sandbox.testing import SandboxThread

# Commerce Layer's documented counts and windows (docs/rate-limits.md), before scaling.
PRESETS = {"test": {"burst": 25, "average": 100}, "live": {"burst": 50, "average": 200}}
BURST_WINDOW_S = 10.0
AVERAGE_WINDOW_S = 60.0
DEFAULT_MARGIN_S = 0.25  # rate_limit.safety_margin_s default (importer/config.py)
POST = "POST /api/customer_payment_sources"
EMAIL = "GET /api/customers"
WALLET = "GET /api/customer_payment_sources"


def earliest_last(n: int, limit: int, window_s: float) -> float:
    """The earliest the last of n requests can be accepted after the first, limit per window."""
    return ((n - 1) // limit) * window_s if n > 0 else 0.0


def earliest_schedule(endpoints: list[str], burst: tuple[int, float], average: tuple[int, float]) -> float:
    """The exact optimum for this sequence of requests under BOTH windows at once: send each
    request as early as every window allows (greedy), and return when the last one goes.

    No schedule of the same sequence can finish earlier: by induction, each request's earliest
    time depends only on earlier requests' times, which greedy makes as early as possible. It is
    later than `max(earliest_last(...))` when the burst window lets the average window fill
    early and then replay the same bursts one average window later."""
    (burst_l, burst_w), (avg_l, avg_w) = burst, average
    times: list[float] = []
    per_endpoint: dict[str, list[float]] = defaultdict(list)
    t = 0.0
    for endpoint in endpoints:
        mine = per_endpoint[endpoint]
        if len(times) >= avg_l:
            t = max(t, times[-avg_l] + avg_w)
        if len(mine) >= burst_l:
            t = max(t, mine[-burst_l] + burst_w)
        times.append(t)
        mine.append(t)
    return t


@contextmanager
def open_sandbox(kind: str, settings: SandboxSettings) -> Iterator[tuple[Any, float]]:
    """The sandbox and its clock origin on this process's time.monotonic()."""
    if kind == "thread":
        with SandboxThread(settings) as sb:
            yield sb, sb.handle.sandbox.started
    else:
        args = [
            "--env",
            settings.env,
            "--time-scale",
            repr(settings.time_scale),
            "--seed",
            str(settings.seed),
            "--customers",
            str(settings.customers),
        ]
        with SandboxProcess(*args) as sp:
            yield sp, sp.started_mono


def one_run(
    sb: Any, origin: float, settings: Any, env: str, scale: float, path: Path, rows: int, report_dir: Path
) -> dict[str, Any]:
    t_start = time.monotonic()
    outcome = execute(
        settings, RunOptions(command="run", inputs=(str(path),), run_id=new_run_id(), report_dir=report_dir)
    )
    t_end = time.monotonic()
    summary = json.loads((report_dir / "summary.json").read_text())
    lo, hi = t_start - origin - 1e-3, t_end - origin + 1e-3
    log = [e for e in sb.requests_log() if lo <= e["t"] <= hi]
    api = [e for e in log if e["path"].startswith("/api")]
    api.sort(key=lambda e: e["t"])
    accepted = [e for e in api if not e["rate_limited"] and e["fault"] != "storm"]
    by_endpoint: dict[str, int] = defaultdict(int)
    for e in accepted:
        by_endpoint[f"{e['method']} {e['path']}"] += 1
    rejected: dict[str, int] = defaultdict(int)
    for e in api:
        if e["rate_limited"]:
            rejected[f"{e['method']} {e['path']}"] += 1
    burst_l, avg_l = PRESETS[env]["burst"], PRESETS[env]["average"]
    burst_w, avg_w = BURST_WINDOW_S * scale, AVERAGE_WINDOW_S * scale
    margin = settings.rate_limit.safety_margin_s
    bound_avg = earliest_last(len(accepted), avg_l, avg_w)
    bound_burst = {k: earliest_last(n, burst_l, burst_w) for k, n in by_endpoint.items()}
    bound = max([bound_avg, *bound_burst.values()])
    # The same bound for the client's own windows (each `margin` longer): what it can reach at best.
    client_bound = max(
        [earliest_last(len(accepted), avg_l, avg_w + margin)]
        + [earliest_last(n, burst_l, burst_w + margin) for n in by_endpoint.values()]
    )
    sequence = [f"{e['method']} {e['path']}" for e in accepted]
    exact = earliest_schedule(sequence, (burst_l, burst_w), (avg_l, avg_w))
    client_exact = earliest_schedule(sequence, (burst_l, burst_w + margin), (avg_l, avg_w + margin))
    span = accepted[-1]["t"] - accepted[0]["t"] if accepted else 0.0
    wall = t_end - t_start
    return {
        "exit_code": outcome.exit_code,
        "counts": {k: v for k, v in summary["counts"].items() if v},
        "wall_s": wall,
        "span_s": span,
        "head_s": (accepted[0]["t"] + origin - t_start) if accepted else None,
        "tail_s": (t_end - origin - accepted[-1]["t"]) if accepted else None,
        "summary": {
            k: summary.get(k)
            for k in (
                "requests",
                "posts",
                "lookup_requests",
                "tokens_fetched",
                "rate_limited",
                "retries",
                "paused_s",
                "throughput_rows_per_s",
                "rows_settled",
                "lookups_per_100_rows",
                "check_to_post_max_s",
                "check_to_post_mean_s",
                "duration_s",
            )
        },
        "accepted": len(accepted),
        "accepted_by_endpoint": dict(by_endpoint),
        "rejected_429": sum(1 for e in api if e["rate_limited"]),
        "token_requests": sum(1 for e in log if e["path"] == "/oauth/token"),
        "bound_avg_s": bound_avg,
        "bound_post_burst_s": bound_burst.get(POST, 0.0),
        "bound_s": bound,
        "client_bound_s": client_bound,
        "exact_s": exact,
        "client_exact_s": client_exact,
        "margin_cost_s": client_exact - exact,
        "other_s": span - client_exact,
        "rejected_by_endpoint": dict(rejected),
        "efficiency_span": bound / span if span else None,
        "efficiency_wall": bound / wall if wall else None,
        "exact_efficiency_span": exact / span if span else None,
        "exact_efficiency_wall": exact / wall if wall else None,
        "rows_per_s": rows / wall,
        "max_rows_per_s": rows / bound if bound else None,
        "log": [
            (round(e["t"], 4), f"{e['method']} {e['path']}", e["status"], e["rate_limited"]) for e in api
        ],
        "steady_max_rows_per_s": (avg_l / avg_w) * rows / len(accepted) if accepted else None,
    }


def run_config(
    rows: int,
    env: str,
    scale: float,
    margin: float,
    kind: str,
    rerun: bool,
    shape: str = "pairs",
    check_before_post: bool = False,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-rate-") as tmp_name:
        tmp = Path(tmp_name)
        path = tmp / "input.csv"
        info = write_sample(path, DEMO_SEED, DEMO_CUSTOMERS, rows=rows, shape=shape)
        sb_settings = SandboxSettings(env=env, time_scale=scale, seed=DEMO_SEED, customers=info.customers)
        with open_sandbox(kind, sb_settings) as (sb, origin):

            def settings_for(journal: Path) -> Any:
                settings, _ = load_settings(
                    None,
                    overrides={
                        **api_overrides(sb),
                        "rate_limit.preset": env,  # the counts: 25/100 or 50/200
                        "rate_limit.burst_window_s": BURST_WINDOW_S * scale,
                        "rate_limit.average_window_s": AVERAGE_WINDOW_S * scale,
                        "rate_limit.safety_margin_s": margin,
                        "journal.path": str(journal),
                        "lookups.check_before_post": check_before_post,
                    },
                    env={},
                )
                return settings

            out: dict[str, Any] = {
                "rows": info.rows,
                "customers": info.customers,
                "env": env,
                "time_scale": scale,
                "margin_s": margin,
                "sandbox": kind,
            }
            out["first"] = one_run(
                sb, origin, settings_for(tmp / "j1.sqlite"), env, scale, path, info.rows, tmp / "report-1"
            )
            if rerun:
                # Let the server's windows empty, so the rerun starts as a later job would.
                time.sleep(AVERAGE_WINDOW_S * scale + margin + 0.2)
                out["rerun"] = one_run(
                    sb, origin, settings_for(tmp / "j2.sqlite"), env, scale, path, info.rows, tmp / "report-2"
                )
            out["windows_max"] = sb.windows_max()
            out["duplicates"] = sb.stats()["duplicates"]["count"]
    return out


SHORT = {POST: "POST", EMAIL: "GET customers", WALLET: "GET wallets"}


def rejections(f: dict[str, Any]) -> str:
    """429s, with the endpoints that got them."""
    parts = [f"{SHORT.get(k, k)} {n}" for k, n in sorted(f["rejected_by_endpoint"].items())]
    return f"{f['rejected_429']}" + (f" ({', '.join(parts)})" if parts else "")


def fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def print_report(results: list[dict[str, Any]]) -> bool:
    """Markdown tables; returns False when a server window ever held more than its limit."""
    print("\n### First import: requests (accepted, from the sandbox log)\n")
    print(
        "| env | scale | rows | margin s | POSTs | e-mail GETs | wallet GETs | token | 429s | wall s | "
        "span s |"
    )
    print("|" + "---|" * 11)
    for r in results:
        f = r["first"]
        by = f["accepted_by_endpoint"]
        print(
            f"| {r['env']} | {r['time_scale']:g} | {r['rows']:,} | {r['margin_s']:g} | {by.get(POST, 0)} | "
            f"{by.get(EMAIL, 0)} | {by.get(WALLET, 0)} | {f['token_requests']} | {rejections(f)} | "
            f"{fmt(f['wall_s'])} | {fmt(f['span_s'])} |"
        )
    print("\n### First import: efficiency\n")
    print("bound = max over windows of floor((n-1)/L)·W; exact = the greedy schedule of the same request")
    print("sequence under both windows at once (the true optimum); eff. = bound / actual.\n")
    print(
        "| env | scale | rows | margin s | bound s (avg / POST burst) | eff. (span) | eff. (wall) | "
        "exact s | eff. vs exact (span) | eff. vs exact (wall) | rows/s | max rows/s (bound) | "
        "max rows/s (exact) |"
    )
    print("|" + "---|" * 13)
    for r in results:
        f = r["first"]
        print(
            f"| {r['env']} | {r['time_scale']:g} | {r['rows']:,} | {r['margin_s']:g} | "
            f"{fmt(f['bound_s'])} ({fmt(f['bound_avg_s'])} / {fmt(f['bound_post_burst_s'])}) | "
            f"{f['efficiency_span']:.1%} | {f['efficiency_wall']:.1%} | {fmt(f['exact_s'])} | "
            f"{f['exact_efficiency_span']:.1%} | {f['exact_efficiency_wall']:.1%} | {f['rows_per_s']:.2f} | "
            f"{fmt(f['max_rows_per_s'], 2)} | {r['rows'] / f['exact_s']:.2f} |"
        )
    print("\n### First import: where the wall time goes (s)\n")
    print("head = start of `execute` to the first accepted request (read, validate, token); exact = the")
    print("optimum above; margin = the same optimum on the client's windows (each safety_margin_s longer)")
    print("minus exact; other = span - exact - margin (latency, 429 pauses, holds); tail = last request to")
    print("the end of `execute` (report).\n")
    print("| env | scale | rows | margin s | head | exact | margin | other | tail | wall |")
    print("|" + "---|" * 10)
    for r in results:
        f = r["first"]
        print(
            f"| {r['env']} | {r['time_scale']:g} | {r['rows']:,} | {r['margin_s']:g} | "
            f"{fmt(f['head_s'], 2)} | {fmt(f['exact_s'], 2)} | {fmt(f['margin_cost_s'], 2)} | "
            f"{fmt(f['other_s'], 2)} | "
            f"{fmt(f['tail_s'], 2)} | {fmt(f['wall_s'], 2)} |"
        )
    print("\n### Look-ups per 100 rows: first import vs rerun with a fresh journal\n")
    print(
        "| env | scale | rows | margin s | run | statuses | look-ups | e-mail GETs | wallet GETs | "
        "look-ups/100 rows | POSTs | wall s | 429s |"
    )
    print("|" + "---|" * 13)
    for r in results:
        for name in ("first", "rerun"):
            f = r.get(name)
            if f is None:
                continue
            by = f["accepted_by_endpoint"]
            s = f["summary"]
            print(
                f"| {r['env']} | {r['time_scale']:g} | {r['rows']:,} | {r['margin_s']:g} | {name} | "
                f"{', '.join(f'{k} {v}' for k, v in f['counts'].items())} | {s['lookup_requests']} | "
                f"{by.get(EMAIL, 0)} | {by.get(WALLET, 0)} | {s['lookups_per_100_rows']} | {s['posts']} | "
                f"{fmt(f['wall_s'])} | {rejections(f)} |"
            )
    print("\n### Most accepted requests in any server window (`/_sandbox/windows/max`)\n")
    print("| env | scale | margin s | window | max | limit | window s | ok |")
    print("|---|---|---|---|---|---|---|---|")
    ok = True
    for r in results:
        for kind, entries in r["windows_max"].items():
            for name, e in entries.items():
                fine = e["max"] <= e["limit"]
                ok = ok and fine
                print(
                    f"| {r['env']} | {r['time_scale']:g} | {r['margin_s']:g} | {kind} {name} | "
                    f"{e['max']} | {e['limit']} | {e['window_s']:g} | "
                    f"{'yes' if fine else '**EXCEEDED**'} |"
                )
    dups = sum(r["duplicates"] for r in results)
    print(f"\nduplicates in the sandbox after all runs: {dups}")
    return ok and dups == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--env", choices=sorted(PRESETS), default="test")
    ap.add_argument("--time-scale", type=float, default=0.05)
    ap.add_argument(
        "--margins",
        nargs="+",
        choices=["default", "scaled"],
        default=["default", "scaled"],
        help="safety_margin_s: default 0.25 s, or 0.25 s × time-scale",
    )
    ap.add_argument("--sandbox", choices=["thread", "process"], default="thread")
    ap.add_argument("--no-rerun", action="store_true", help="skip the rerun with a fresh journal")
    ap.add_argument(
        "--check-before-post", action="store_true", help="run with lookups.check_before_post: true"
    )
    ap.add_argument(
        "--shape",
        choices=["pairs", "tokens"],
        default="pairs",
        help="the sample's rows: type + id, or tokens",
    )
    ap.add_argument("--json", metavar="PATH", help="also write the raw measurements here")
    args = ap.parse_args()
    configure_logging(fmt="json", level=logging.WARNING)
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    results = []
    for name in args.margins:
        margin = DEFAULT_MARGIN_S if name == "default" else DEFAULT_MARGIN_S * args.time_scale
        t0 = time.monotonic()
        results.append(
            run_config(
                args.rows,
                args.env,
                args.time_scale,
                margin,
                args.sandbox,
                not args.no_rerun,
                args.shape,
                args.check_before_post,
            )
        )
        print(
            f"[{args.env} x{args.time_scale:g} margin {margin:g}: done in {time.monotonic() - t0:.0f} s]",
            file=sys.stderr,
            flush=True,
        )
    ok = print_report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if not ok:
        print("A SERVER WINDOW HELD MORE THAN ITS LIMIT, or duplicates were created", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
