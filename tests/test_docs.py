"""The README documents every command and flag the CLI has, and the samples it points at work."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from importer.cli import CommandParser, build_parser, main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    # A subcommand's flags may be added only when it is parsed (the sandbox's, so that other
    # commands start without importing it): load them all here, every flag is checked.
    return {
        name: p.load_arguments() if isinstance(p, CommandParser) else p for name, p in action.choices.items()
    }


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_flag_of_every_command_is_in_the_readme(command: str) -> None:
    sub = _subcommands()[command]
    assert f"importer {command}" in README
    flags = [s for a in sub._actions for s in a.option_strings if s.startswith("--") and s != "--help"]
    missing = [f for f in flags if f not in README]
    assert not missing, f"`importer {command}` flags missing from README.md: {missing}"


def test_readme_opens_with_the_two_fresh_machine_commands() -> None:
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    assert "pip install -e . && importer demo" in blocks[0]
    assert "pip install -e '.[test]' && python -m pytest -q" in blocks[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "-m pytest -q" in ci
    # CI installs the dev extras, which hold the test extras, so it tests what the README installs.
    assert "pip install --quiet -e '.[dev]'" in ci
    assert '"importer[test]"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_ci_runs_the_linters_and_the_type_checker_before_the_tests() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    checks = ["-m ruff check", "-m ruff format --check", "-m mypy"]
    positions = [ci.find(check) for check in checks]
    assert all(p >= 0 for p in positions), f"CI lacks one of {checks}"
    assert max(positions) < ci.find("-m pytest -q")
    assert "CHECKED=(importer tests bench samples)" in ci
    for command in ("ruff check importer tests bench samples", "ruff format --check", "mypy"):
        assert command in README, f"README's development section does not show `{command}`"


def test_the_samples_the_readme_names_validate_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code = main(["validate", "samples/", "--report-dir", str(tmp_path), "--log-format", "json", "-q"])
    assert code == 0
    lines = (tmp_path / "results.csv").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 41  # the header + 40 pairings, all valid


def test_the_readme_lists_the_report_columns_the_code_writes() -> None:
    """README's results.csv column list and failures.csv shape are the code's, in order."""
    from importer.columns import ERROR_COLUMNS, FAILURE_CORE_FIELDS, FAILURE_LEAD_COLUMNS, REPORT_COLUMNS

    listed = re.search(r"`results\.csv` — .*?\n\s*`([a-z_,]+)`", README, flags=re.S)
    assert listed is not None, "README has no results.csv column list"
    assert tuple(listed.group(1).split(",")) == REPORT_COLUMNS
    assert f"`{','.join(FAILURE_LEAD_COLUMNS)}`" in README
    assert f"`{','.join(FAILURE_CORE_FIELDS)}`" in README
    assert f"`{','.join(ERROR_COLUMNS)}`" in README
    from importer.models import RowStatus

    for status in RowStatus:  # every status the report can hold has its line in the table
        assert f"| `{status.value}` |" in README, status
