"""Admission of requests: the shared 429 gate in front of the rate windows (clock injected).

Every request to /api goes through `Pacer.admit(endpoint)` right before it is written to the
socket. The gate is the one place where workers pause together after a 429:

    open ──429──▶ closed (for Retry-After, or one burst window) ──timer──▶ half-open
      ▲                                                                        │ one probe
      └─────────────── probe answered with anything but 429 ◀─────────────────┘

Only one request (the probe) goes out when the pause ends; the others wait for its answer, so a
rate-limit storm costs one request per pause instead of one per worker, and after it the
workers come back one by one through the windows, not as a herd.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from importer.clock import Clock, Sleep
from importer.limits import Windows


class _State(Enum):
    OPEN = "open"
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    PROBING = "probing"


@dataclass(frozen=True, slots=True)
class Permit:
    """What `admit` hands out. `probe` is the gate generation this request probes, if any."""

    probe: int | None = None
    # Stamps the average window held when this request was admitted, itself included: the most
    # of our requests the server can have counted when it answers this one.
    average_held: int = 0


class PauseGate:
    """One gate shared by all senders. `on_pause(pause_s)` / `on_resume(paused_s)` are for the log."""

    def __init__(
        self,
        clock: Clock,
        sleep: Sleep,
        on_pause: Callable[[float], None] | None = None,
        on_resume: Callable[[float], None] | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._on_pause = on_pause
        self._on_resume = on_resume
        self._state = _State.OPEN
        self._until = 0.0
        self._closed_at = 0.0
        self._generation = 0
        self._changed = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self.paused_s = 0.0
        self.pauses = 0
        self.consecutive = 0  # pauses in a row without a probe getting through

    @property
    def is_open(self) -> bool:
        return self._state is _State.OPEN

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def close(self, pause_s: float) -> None:
        """A 429 arrived: pause everyone for `pause_s` (extends a pause already running)."""
        now = self._clock()
        if self._state is _State.OPEN:
            self._closed_at = now
            self.pauses += 1
            if self._on_pause is not None:
                self._on_pause(pause_s)
        self.consecutive += 1
        self._until = max(self._until, now + pause_s) if self._state is _State.CLOSED else now + pause_s
        self._state = _State.CLOSED
        self._generation += 1  # a probe still out belongs to the old generation and is ignored
        if self._timer is None or self._timer.done():
            self._timer = asyncio.create_task(self._reopen_later(), name="importer-gate-timer")
        self._notify()

    async def _reopen_later(self) -> None:
        while self._state is _State.CLOSED and (left := self._until - self._clock()) > 0:
            await self._sleep(left)
        if self._state is _State.CLOSED:
            self._state = _State.HALF_OPEN
            self._notify()

    async def enter(self) -> int | None:
        """Wait until requests may go. Returns the generation when the caller is the probe."""
        while True:
            if self._state is _State.OPEN:
                return None
            if self._state is _State.HALF_OPEN:
                self._state = _State.PROBING
                return self._generation
            await self._changed.wait()

    def probe_done(self, generation: int | None, *, rate_limited: bool) -> None:
        """The probe got an answer (or gave up). Anything but a 429 opens the gate."""
        if generation is None or generation != self._generation or self._state is not _State.PROBING:
            return
        if rate_limited:  # the caller normally closes first; this only covers a bare report
            self._state = _State.HALF_OPEN
        else:
            self._state = _State.OPEN
            self.consecutive = 0
            paused = self._clock() - self._closed_at
            self.paused_s += paused
            if self._on_resume is not None:
                self._on_resume(paused)
        self._notify()

    def holds_probe(self, generation: int) -> bool:
        return generation == self._generation and self._state is _State.PROBING

    def give_back(self, generation: int | None) -> None:
        """The probe was cancelled before it was sent: let another waiter probe instead."""
        if generation is not None and generation == self._generation and self._state is _State.PROBING:
            self._state = _State.HALF_OPEN
            self._notify()

    async def aclose(self) -> None:
        if self._timer is not None and not self._timer.done():
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer


class Pacer:
    """Gate + windows: `admit` returns when a request may be sent *now*, and has stamped it."""

    def __init__(
        self,
        windows: Windows,
        gate: PauseGate,
        clock: Clock,
        sleep: Sleep,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.windows = windows
        self.gate = gate
        self._clock = clock
        self._sleep = sleep
        self._on_wait = on_wait  # told how long a request waits for a window (the progress line)

    async def admit(self, endpoint: str) -> Permit:
        probe: int | None = None
        try:
            while True:
                # Re-enter the gate unless we already hold the current probe: a gate that closed
                # while we slept (a 429 to someone else) makes us queue behind it again.
                if probe is None or not self.gate.holds_probe(probe):
                    probe = await self.gate.enter()
                now = self._clock()
                wait = self.windows.take(endpoint, now)
                if wait <= 0.0:
                    return Permit(probe, self.windows.average.held(now))
                if self._on_wait is not None:
                    self._on_wait(wait)
                await self._sleep(wait)
        except BaseException:
            self.gate.give_back(probe)
            raise

    async def ready(self, endpoint: str) -> None:
        """Return once a request to `endpoint` would fit the windows now, stamping nothing: a
        check that must happen right before a send waits here first, not after it."""
        while (wait := self.windows.wait(endpoint, self._clock())) > 0.0:
            await self._sleep(wait)

    def server_holds(self, limit: float, remaining: float, ours: int) -> int:
        """The first answer's `X-Ratelimit-Limit`/`-Remaining`: the server's average window holds
        `limit - remaining` requests from this IP, of which at most `ours` (the answered request's
        `Permit.average_held`) can be ours; requests we sent after it may not have arrived yet,
        so they are not subtracted. The rest were sent by someone else (a run on another journal,
        another tool): count them as sent just now, the safe guess, since the headers do not say
        when. The headers say nothing of the burst windows either, and the other client may have
        just filled one: send nothing for one burst window, after which every burst stamp it can
        have made before now has expired. Returns how many were added."""
        now = self._clock()
        extra = int(limit - remaining) - ours
        if extra > 0:
            self.windows.average.seed([now] * extra)
            spec = self.windows.spec
            self.windows.hold_until(now + spec.burst_window_s + spec.margin_s)
        return max(extra, 0)

    def server_says_empty(self, interval_s: float | None, limit: float | None) -> None:
        """X-Ratelimit-Remaining: 0: send nothing for one average slot (from the headers when
        they are there, else from our settings), in case the server counts more than we do."""
        slot = interval_s / limit if interval_s and limit else self.windows.spec.slot_s
        self.windows.hold_until(self._clock() + slot)
