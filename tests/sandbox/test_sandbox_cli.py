"""`python -m importer.sandbox`: start-up lines, clean stop on SIGTERM/SIGINT, samples, bad flags."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from importer.sandbox import cli

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def start(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "importer.sandbox", "--port", "0", "--customers", "3", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = {}
    for _ in range(4):
        key, _, value = process.stdout.readline().strip().partition(": ")
        lines[key] = value
    return process, lines


def token(lines: dict[str, str]) -> int:
    body = json.dumps(
        {
            "grant_type": "client_credentials",
            "client_id": lines["client_id"],
            "client_secret": lines["client_secret"],
        }
    ).encode()
    request = urllib.request.Request(
        lines["auth_url"], data=body, headers={"Content-Type": "application/json"}
    )
    with NO_PROXY.open(request, timeout=10) as response:
        return int(response.status)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serves_then_stops_cleanly(sig: signal.Signals) -> None:
    process, lines = start("--fault", "latency_median_s=0.001", "--set", "burst_limit=7")
    try:
        assert list(lines) == ["base_url", "auth_url", "client_id", "client_secret"]
        assert lines["base_url"].startswith("http://127.0.0.1:") and not lines["base_url"].endswith("/api")
        assert lines["auth_url"] == f"{lines['base_url']}/oauth/token"
        assert (lines["client_id"], lines["client_secret"]) == ("sandbox-client-id", "sandbox-client-secret")
        assert token(lines) == 200
        with NO_PROXY.open(f"{lines['base_url']}/_sandbox/settings", timeout=10) as response:
            settings = json.loads(response.read())
        assert (settings["burst_limit"], settings["latency_median_s"], settings["customers"]) == (7, 0.001, 3)
    finally:
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0
    assert stderr == ""


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    for argv, message in (
        (["--fault", "burst_limit=3"], "burst_limit is not a fault"),
        (["--fault", "error_5xx=7"], "error_5xx must be a probability"),
        (["--set", "nope=1"], "unknown sandbox setting: nope"),
    ):
        assert cli.run(parser.parse_args(argv)) == 2
        assert message in capsys.readouterr().err


def test_write_sample_and_exit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    target = tmp_path / "sample.csv"
    argv = ["--seed", "3", "--customers", "4", "--write-sample", str(target), "--sample-shape", "tokens"]
    assert cli.run(parser.parse_args(argv)) == 0
    assert (
        target.read_text().splitlines()[0]
        == "customer_id,payment_method_id,customer_token,payment_source_token"
    )
    assert "--seed 3 --customers 4" in capsys.readouterr().out
    assert cli.run(parser.parse_args(["--write-sample", str(tmp_path / "x.txt")])) == 2
