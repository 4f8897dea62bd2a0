"""Start-up: `validate` and `run` never import the sandbox; `importer sandbox` still has its flags.

A fresh interpreter per check, since this process has long imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from importer.cli import CommandParser, build_parser, main

_PROBE = """
import json, sys
from importer.cli import main
code = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m == "importer.sandbox" or m.startswith("importer.sandbox."))
print(json.dumps({"code": code, "sandbox": loaded}))
"""


def _modules_after(argv: list[str], cwd: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_validate_does_not_import_the_sandbox(tmp_path: Path) -> None:
    source = tmp_path / "one-row.csv"
    source.write_text(
        "customer_id,customer_email,payment_source_type,payment_source_id\n"
        "pB2vn5oKTb,,adyen_payments,0B2j7pRyQA\n",
        encoding="utf-8",
    )
    argv = ["validate", str(source), "--report-dir", str(tmp_path / "rep"), "-q", "--log-format", "json"]
    assert _modules_after(argv, tmp_path) == {"code": 0, "sandbox": []}
    assert (tmp_path / "rep" / "results.csv").is_file()


def test_a_usage_error_of_run_does_not_import_the_sandbox(tmp_path: Path) -> None:
    # Parsing `run` builds the whole parser, the sandbox subcommand included.
    argv = ["run", "missing.csv", "--max-rows", "-1", "-q", "--log-format", "json"]
    outcome = _modules_after(argv, tmp_path)
    assert outcome == {"code": 2, "sandbox": []}


def test_the_sandbox_subcommand_gets_its_flags_when_parsed() -> None:
    parser = build_parser()
    args = parser.parse_args(["sandbox", "--port", "0", "--customers", "3", "--set", "burst_limit=5"])
    assert (args.command, args.port, args.customers, args.set_values) == ("sandbox", 0, 3, ["burst_limit=5"])


def test_loading_a_subcommands_flags_twice_adds_them_once() -> None:
    parser = CommandParser(prog="x", arguments="importer.sandbox.cli:add_arguments")
    parser.load_arguments().load_arguments()
    flags = [s for a in parser._actions for s in a.option_strings]
    assert flags.count("--port") == 1


def test_the_sandbox_help_lists_its_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sandbox", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "--time-scale" in shown and "--fault KEY=VALUE" in shown
