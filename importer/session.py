"""One run's API stack, built in one place: rate windows, the 429 gate, the token, the client.

`run` (dispatcher.py) and `undo` (undo.py) both send through exactly this, so a DELETE is paced
by the same windows, retried by the same rules and authenticated by the same token as a POST.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from importer.auth import TokenProvider
from importer.client import ApiClient
from importer.config import Settings
from importer.journal import Journal
from importer.limits import Windows, WindowSpec
from importer.pacing import Pacer, PauseGate
from importer.retry import Backoff
from importer.stats import DispatchStats
from importer.wire import Sender

log = structlog.get_logger("importer")


@dataclass(frozen=True, slots=True)
class ApiSession:
    backoff: Backoff
    windows: Windows
    gate: PauseGate
    tokens: TokenProvider
    client: ApiClient


def open_session(
    settings: Settings,
    sender: Sender,
    stats: DispatchStats,
    *,
    on_pause: Callable[[float], None],
    on_resume: Callable[[float], None],
    on_wait: Callable[[float], None] | None = None,
    on_send: Callable[[str], None] | None = None,
) -> ApiSession:
    """Call inside the run's event loop (the gate and the client take its clock)."""
    rl, retry = settings.rate_limit, settings.retry
    loop = asyncio.get_running_loop()
    clock, sleep = loop.time, asyncio.sleep
    backoff = Backoff(retry.base_delay_s, retry.max_delay_s, retry.max_attempts)
    windows = Windows(
        WindowSpec(
            rl.burst_limit, rl.burst_window_s, rl.average_limit, rl.average_window_s, rl.safety_margin_s
        )
    )
    gate = PauseGate(clock, sleep, on_pause=on_pause, on_resume=on_resume)
    tokens = TokenProvider(sender, settings, stats, clock=clock, sleep=sleep, backoff=backoff)
    client = ApiClient(
        sender,
        tokens,
        Pacer(windows, gate, clock, sleep, on_wait=on_wait),
        backoff,
        stats,
        slots=settings.concurrency,
        pause_s=rl.burst_window_s,
        sleep=sleep,
        max_denied_in_a_row=retry.max_denied_in_a_row,
        on_send=on_send,
    )
    return ApiSession(backoff, windows, gate, tokens, client)


SEND_STAMP_BATCH = 20  # send stamps written to the journal per transaction


@dataclass(slots=True)
class SendStamps:
    """Every /api send, written to the journal, so the next process on it (a rerun, an undo)
    starts with the server's windows as they are (docs/rate-limits.md)."""

    journal: Journal
    target: str
    settings: Settings
    sent: list[tuple[str, float]] = field(default_factory=list)  # (endpoint, wall time) not yet written

    def note(self, endpoint: str) -> None:
        self.sent.append((endpoint, time.time()))

    def flush(self, *, at_least: int = 1) -> None:
        if len(self.sent) >= at_least:
            sent, self.sent = self.sent, []
            rl = self.settings.rate_limit
            self.journal.add_send_stamps(
                self.target, sent, keep_s=rl.average_window_s + rl.safety_margin_s + 1
            )

    def seed(self, windows: Windows) -> None:
        """Start with the stamps the previous runs on this journal left in the server's windows."""
        rl = self.settings.rate_limit
        wall, now = time.time(), asyncio.get_running_loop().time()
        recent = self.journal.recent_send_stamps(self.target, wall - rl.average_window_s - rl.safety_margin_s)
        windows.seed([(endpoint, now - (wall - at)) for endpoint, at in recent])
        if recent:
            log.info("rate.seeded", requests=len(recent), source="journal")
