"""Fixtures shared by every test folder."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
import structlog

# A shell starts a background job (`pytest &`, some CI runners) with SIGINT ignored, and a child
# process inherits an ignored signal through exec. The Ctrl-C tests would then signal a CLI that
# never sees it. Python's own handler is reset to the default at exec, so restoring it here gives
# every child the SIGINT a user's terminal would deliver.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _fresh_log_context() -> Iterator[None]:
    """Each test starts with no bound run_id, so one test's context never leaks into another."""
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()
