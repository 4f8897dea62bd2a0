"""docs/sandbox.md names every setting, fault key, CLI flag and admin route."""

from __future__ import annotations

import argparse
from pathlib import Path

from importer.sandbox import admin, cli
from importer.sandbox.settings import FAULT_KEYS, setting_names

DOC = (Path(__file__).parents[2] / "docs" / "sandbox.md").read_text(encoding="utf-8")


def test_every_setting_and_fault_is_documented() -> None:
    missing = [name for name in (*setting_names(), *FAULT_KEYS, "storm_s") if f"`{name}`" not in DOC]
    assert missing == []


def test_every_cli_flag_is_documented() -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    flags = [opt for action in parser._actions for opt in action.option_strings if opt.startswith("--")]
    assert [flag for flag in flags if flag not in DOC and flag != "--help"] == []


def test_every_admin_route_is_documented() -> None:
    routes = {f"{route.method} {route.path}" for route in admin.routes}  # type: ignore[attr-defined]
    assert [route for route in sorted(routes) if f"`{route}" not in DOC] == []
