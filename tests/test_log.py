"""Logging: JSON lines or console, run_id on every event, secrets never printed."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
import structlog

from importer.log import configure_logging, redact_secrets, use_json


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_level_timestamp_event_and_run_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    structlog.contextvars.bind_contextvars(run_id="20260101T000000Z-abcdef")
    structlog.get_logger("importer").info("run.start", command="validate", rows=3)
    out, err = capsys.readouterr()
    assert out == ""
    (line,) = json_lines(err)
    assert line["event"] == "run.start"
    assert line["level"] == "info"
    assert line["run_id"] == "20260101T000000Z-abcdef"
    assert line["command"] == "validate" and line["rows"] == 3
    stamp = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_module_level_loggers_follow_reconfiguration(capsys: pytest.CaptureFixture[str]) -> None:
    # pipeline.py and friends take their logger at import time; a later configure must reach them.
    log = structlog.get_logger("importer")
    configure_logging("console")
    log.info("first.event")
    configure_logging("json")
    log.info("second.event")
    lines = capsys.readouterr().err.splitlines()
    assert "first.event" in lines[0] and not lines[0].startswith("{")
    assert json.loads(lines[1])["event"] == "second.event"


def test_default_is_json_when_stderr_is_not_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    structlog.get_logger().warning("input.sheet_skipped", sheet="Notes")
    (line,) = json_lines(capsys.readouterr().err)
    assert line == {
        "event": "input.sheet_skipped",
        "sheet": "Notes",
        "level": "warning",
        "timestamp": line["timestamp"],
    }


def test_default_is_console_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    assert use_json(None) is False
    configure_logging()
    structlog.contextvars.bind_contextvars(run_id="r-1")
    structlog.get_logger().info("run.finish", exit_code=0)
    text = tty.getvalue()
    assert "run.finish" in text and "exit_code" in text and "r-1" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_explicit_format_wins_over_tty_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", _Tty())
    assert use_json("json") is True
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert use_json("console") is False
    assert use_json(None) is True
    with pytest.raises(ValueError, match="log format 'xml'"):
        use_json("xml")


def test_console_on_a_pipe_has_no_colour_codes(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("console")
    structlog.get_logger().info("run.progress", done=5)
    err = capsys.readouterr().err
    assert "run.progress" in err and "\x1b[" not in err


def test_level_filters(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", level=logging.WARNING)
    log = structlog.get_logger()
    log.info("row.sent")
    log.debug("row.detail")
    log.error("row.failed", row=7)
    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["row.failed"]
    configure_logging("json", level=logging.DEBUG)
    log.debug("row.detail")
    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["row.detail"]


def test_secret_keys_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    structlog.get_logger().info(
        "auth.token",
        client_secret="cs-1",
        access_token="at-1",
        token="tk-1",
        Authorization="Bearer at-2",
        password="pw-1",
        refresh_token="rt-1",
        headers={"Authorization": "Bearer at-3", "Accept": "application/vnd.api+json"},
        config={"commercelayer": {"client_secret": "cs-2", "client_id": "public-id"}},
        attempts=[{"token": "tk-2"}],
        payment_source_token="pm_123",  # business data, shown in the report anyway
        client_secret_unset=None,
    )
    err = capsys.readouterr().err
    for secret in ("cs-1", "at-1", "tk-1", "at-2", "pw-1", "rt-1", "at-3", "cs-2", "tk-2"):
        assert secret not in err
    (line,) = json_lines(err)
    assert line["client_secret"] == line["access_token"] == line["token"] == "***"
    assert line["Authorization"] == line["password"] == line["refresh_token"] == "***"
    assert line["headers"] == {"Authorization": "***", "Accept": "application/vnd.api+json"}
    assert line["config"] == {"commercelayer": {"client_secret": "***", "client_id": "public-id"}}
    assert line["attempts"] == [{"token": "***"}]
    assert line["payment_source_token"] == "pm_123"
    assert line["client_secret_unset"] is None


def test_bearer_strings_are_masked_anywhere(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    structlog.get_logger().warning(
        "http.request sent with Authorization: Bearer eyJhbGciOi.J9.abc",
        detail="upstream said: bearer abc-DEF_123== was rejected",
        hops=("Bearer xyz", "bearer short"),
    )
    err = capsys.readouterr().err
    assert "eyJhbGciOi" not in err and "abc-DEF_123" not in err and "xyz" not in err
    (line,) = json_lines(err)
    assert line["event"] == "http.request sent with Authorization: Bearer ***"
    assert line["detail"] == "upstream said: bearer *** was rejected"
    assert line["hops"] == ["Bearer ***", "bearer short"]


def test_exception_text_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json")
    try:
        raise RuntimeError("401 for Bearer leaked-token-value")
    except RuntimeError:
        structlog.get_logger().exception("run.crash")
    err = capsys.readouterr().err
    assert "leaked-token-value" not in err
    (line,) = json_lines(err)
    assert line["event"] == "run.crash" and "RuntimeError" in line["exception"]


def test_console_exception_does_not_show_locals(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("console")
    secret_local = "-".join(("local", "secret", "value"))  # noqa: F841 - must not be rendered
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger().exception("run.crash")
    err = capsys.readouterr().err
    assert "boom" in err and "local-secret-value" not in err
    assert "\x1b[" not in err  # no colour codes off a terminal


def test_tty_exception_does_not_show_locals(monkeypatch: pytest.MonkeyPatch) -> None:
    tty = _Tty()
    monkeypatch.setattr(sys, "stderr", tty)
    configure_logging()
    secret_local = "-".join(("tty", "secret", "value"))  # must not be rendered
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger().exception("run.crash")
    # Compared through the variable: rich shows source lines, so the literal may appear there.
    assert "boom" in tty.getvalue() and secret_local not in tty.getvalue()


def test_redact_processor_alone() -> None:
    event = {"event": "x", "Client_Secret": "a", "note": "no bearer here", "n": 1}
    assert redact_secrets(None, "info", event) == {
        "event": "x",
        "Client_Secret": "***",
        "note": "no bearer here",
        "n": 1,
    }


def test_configure_twice_is_harmless(capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        configure_logging("json")
    structlog.get_logger().info("run.start")
    assert len(json_lines(capsys.readouterr().err)) == 1


def test_event_names_are_dotted() -> None:
    # The stable names the runbook and alerting match on.
    for name in ("run.start", "input.sheet_skipped", "row.failed", "run.progress", "run.finish"):
        assert re.fullmatch(r"[a-z_]+\.[a-z_]+", name)
