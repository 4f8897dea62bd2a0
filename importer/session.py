"""One run's API stack, built in one place: rate windows, the 429 gate, the token, the client.

`run` (dispatcher.py) and `undo` (undo.py) both send through exactly this, so a DELETE is paced
by the same windows, retried by the same rules and authenticated by the same token as a POST.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from importer.auth import TokenProvider
from importer.client import ApiClient
from importer.config import Settings
from importer.limits import Windows, WindowSpec
from importer.pacing import Pacer, PauseGate
from importer.retry import Backoff
from importer.stats import DispatchStats
from importer.transport import Sender


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
