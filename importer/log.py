"""Structured logging: one `structlog.configure()` for the whole program.

Nightly jobs read the log as JSON lines; a person at a terminal reads the console renderer.
Every event carries the run id bound by the command (through contextvars), a level and a UTC ISO
timestamp. Event names are dotted and stable (`run.start`, `input.sheet_skipped`, `row.failed`,
`run.progress`, `run.finish`) because alerting matches on them.

Secrets are redacted here as a last line of defence: code should never log them, but a header
dict or an exception text that slips through must not put a token into a log archive.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "***"

# Keys whose value is a credential whatever it looks like. Matched on the lower-cased key.
# `payment_source_token`/`customer_token` are deliberately NOT here: they are the business data
# of a row (gateway references, not credentials to our API) and the report shows them anyway.
_SECRET_KEYS = frozenset(
    {
        "client_secret",
        "access_token",
        "refresh_token",
        "id_token",
        "token",
        "authorization",
        "password",
        "passwd",
        "secret",
        "api_key",
        "apikey",
        "cookie",
        "set-cookie",
    }
)
_SECRET_KEY_PARTS = ("secret", "password", "authorization")
# RFC 6750 token characters. "Bearer <x>" (the header's spelling) is masked whatever <x> is; other
# casings only when what follows is token-long, so prose such as "no bearer here" stays readable.
_BEARER = re.compile(r"\b(?:(Bearer)\s+[A-Za-z0-9\-._~+/]+=*|((?i:bearer))\s+[A-Za-z0-9\-._~+/]{8,}=*)")


def _is_secret_key(key: object) -> bool:
    if not isinstance(key, str):
        return False
    k = key.lower()
    return k in _SECRET_KEYS or any(part in k for part in _SECRET_KEY_PARTS)


def _redact(value: Any) -> Any:
    """Mask secrets inside nested dicts/lists too (a logged config or header mapping)."""
    if isinstance(value, str):
        if "earer" not in value and "EARER" not in value:
            return value
        return _BEARER.sub(lambda m: f"{m.group(1) or m.group(2)} {REDACTED}", value)
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if _is_secret_key(k) and v is not None else _redact(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v) for v in value)
    return value


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """structlog processor: replace credential-named keys and `Bearer <x>` strings with ***."""
    for key, value in list(event_dict.items()):
        if _is_secret_key(key) and value is not None:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(value)
    return event_dict


class _StderrLogger:
    """Writes to whatever `sys.stderr` is *now*, so pytest's capture and redirections work even
    though the configuration outlives them."""

    def msg(self, message: str) -> None:
        stream: TextIO = sys.stderr
        stream.write(message + "\n")
        stream.flush()

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _stderr_logger_factory(*_args: Any) -> _StderrLogger:
    return _StderrLogger()


def _stderr_is_tty() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def use_json(fmt: str | None) -> bool:
    """JSON unless asked for the console, or unset and a person is watching stderr."""
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    if fmt is not None:
        raise ValueError(f"log format {fmt!r}: use 'json' or 'console'")
    return not _stderr_is_tty()


@dataclass(slots=True)
class _Mode:
    json: bool = True
    row_events: bool = False


_MODE = _Mode()


def json_mode() -> bool:
    """True when the log is JSON lines: then nothing else may be written to stderr."""
    return _MODE.json


def row_events() -> bool:
    """`-v`: one info event per settled row (`row.created`, `row.invalid`, …), naming its file,
    sheet and row. Off by default: a million-row run would log a million lines."""
    return _MODE.row_events


def level_for(verbose: int, quiet: int) -> int:
    """Default: run-level info events and every warning (`row.failed` included). `-v` adds the
    per-row events (see `row_events`), `-vv` the debug events: every API answer, the config.
    `-q` warnings and errors only, `-qq` errors only."""
    if quiet:
        return logging.WARNING if quiet == 1 else logging.ERROR
    return logging.DEBUG if verbose >= 2 else logging.INFO


def configure_logging(fmt: str | None = None, level: int = logging.INFO, *, verbose: int = 0) -> None:
    """Configure structlog. Safe to call again (tests do): the last call wins everywhere,
    because loggers are not cached on first use."""
    as_json = use_json(fmt)
    _MODE.json = as_json
    _MODE.row_events = verbose >= 1 and level <= logging.INFO
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: list[Processor]
    if as_json:
        renderer = [
            # Tracebacks become one string field, so a line stays one JSON object; they are
            # rendered before redaction so a secret in an exception message is masked too.
            structlog.processors.format_exc_info,
            redact_secrets,
            structlog.processors.JSONRenderer(default=str),
        ]
    else:
        tty = _stderr_is_tty()
        renderer = [
            redact_secrets,
            structlog.dev.ConsoleRenderer(
                colors=tty,
                # Never print local variables in tracebacks: they may hold the client secret.
                # Off a terminal, a plain traceback (rich would still draw colour codes).
                exception_formatter=(
                    structlog.dev.RichTracebackFormatter(show_locals=False)
                    if tty
                    else structlog.dev.plain_traceback
                ),
            ),
        ]
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_stderr_logger_factory,
        context_class=dict,
        cache_logger_on_first_use=False,
    )
