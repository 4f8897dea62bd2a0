"""`importer sandbox` / `python -m importer.sandbox`: serve the sandbox, or write a sample file.

A thin shell: arguments → SandboxSettings → `running_sandbox` until SIGINT/SIGTERM (exit 0).
On start it prints, one per line and flushed: base_url, auth_url, client_id, client_secret.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any, TextIO

from importer.sandbox.sample import SAMPLE_SHAPES, write_sample
from importer.sandbox.settings import (
    DEMO_CUSTOMERS,
    DEMO_SEED,
    ENVS,
    FAULT_KEYS,
    SandboxSettings,
    parse_override,
)
from importer.sandbox.testing import running_sandbox

EXIT_OK = 0
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one (default)")
    parser.add_argument(
        "--env", choices=ENVS, default="test", help="rate limits and meta.mode (default: test)"
    )
    parser.add_argument(
        "--seed", type=int, default=DEMO_SEED, help=f"random seed of the data (default: {DEMO_SEED})"
    )
    parser.add_argument(
        "--customers", type=int, default=DEMO_CUSTOMERS, help=f"customers to seed (default: {DEMO_CUSTOMERS})"
    )
    parser.add_argument("--state", metavar="FILE", help="keep the state in this SQLite file across restarts")
    parser.add_argument("--seed-file", metavar="FILE", help="seed from this JSON file instead of --seed")
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"switch a fault on, e.g. error_5xx=0.05 (keys: {', '.join(FAULT_KEYS)})",
    )
    parser.add_argument(
        "--set",
        dest="set_values",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sandbox setting, e.g. burst_limit=5 (see docs/sandbox.md)",
    )
    parser.add_argument(
        "--time-scale", type=float, default=1.0, help="multiply every rate window (default: 1)"
    )
    parser.add_argument(
        "--write-sample", metavar="PATH", help="write a .csv/.xlsx of valid pairings and exit"
    )
    parser.add_argument(
        "--sample-shape", choices=SAMPLE_SHAPES, default="pairs", help="columns of the sample"
    )
    parser.add_argument("--sample-rows", type=int, help="rows in the sample (grows the seed when needed)")


def settings_from_args(args: argparse.Namespace) -> SandboxSettings:
    overrides: dict[str, Any] = {}
    for assignment in args.fault:
        key, value = parse_override(assignment)
        if key not in FAULT_KEYS:
            raise ValueError(f"--fault {assignment}: {key} is not a fault (use --set for other settings)")
        overrides[key] = value
    for assignment in args.set_values:
        key, value = parse_override(assignment)
        overrides[key] = value
    return SandboxSettings(
        host=args.host,
        port=args.port,
        env=args.env,
        seed=args.seed,
        customers=args.customers,
        state_path=args.state,
        seed_file=args.seed_file,
        time_scale=args.time_scale,
    ).with_overrides(**overrides)


async def serve(settings: SandboxSettings, out: TextIO | None = None) -> None:
    """Serve until SIGINT or SIGTERM, after printing the four start-up lines to `out` (stdout)."""
    out = out or sys.stdout
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_sandbox(settings) as handle:
            print(f"base_url: {handle.base_url}", file=out)
            print(f"auth_url: {handle.auth_url}", file=out)
            print(f"client_id: {handle.client_id}", file=out)
            print(f"client_secret: {handle.client_secret}", file=out)
            out.flush()
            await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ValueError as exc:
        print(f"importer sandbox: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.write_sample:
        try:
            info = write_sample(
                args.write_sample, settings.seed, settings.customers, args.sample_rows, args.sample_shape
            )
        except (ValueError, OSError) as exc:
            print(f"importer sandbox: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"sample: {info.path} ({info.rows} rows, shape {info.shape}; start the sandbox with "
              f"--seed {settings.seed} --customers {info.customers})")  # fmt: skip
        return EXIT_OK
    try:
        asyncio.run(serve(settings))
    except OSError as exc:
        print(f"importer sandbox: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK
