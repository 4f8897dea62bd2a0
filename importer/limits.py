"""Client-side model of the API's rate windows, so the server never has to say 429.

Commerce Layer counts, per client IP, sliding windows of *arrival* times: a burst window per
endpoint (method + path) and an average window shared by every uncacheable read and write
(docs/rate-limits.md). The client can only stamp *send* times. If every request reaches the
server at most `margin` seconds after it was stamped, then the requests the server sees inside
any window of length `w` were all stamped inside an interval of length `w + margin`. So the
client keeps windows of length `w + margin` and admits a request only while fewer than `limit`
stamps lie in the last `w + margin` seconds: no server window can then hold more than `limit`.

Why not asyncio-throttle here (it is used for the token endpoint, see auth.py): its `Throttler`
stamps at acquire time and holds one window. A request needs two windows (burst + average);
acquiring two throttlers in turn stamps the first before the second has admitted the request,
possibly long before the request leaves, so the server could see more than the limit in a
window. `Windows.take` checks every window and stamps them all in one step, at send time.

This module is pure: every method takes `now` from the caller's clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

_TICK = 1e-6


class WindowLog:
    """The send stamps one sliding window holds, oldest first.

    A stamp `s` counts while `now - s < window_s`, as the server counts: after `limit` stamps at
    t=0 the next request fits at exactly t=window_s and not a moment before.
    """

    __slots__ = ("_stamps", "limit", "max_held", "window_s")

    def __init__(self, limit: int, window_s: float) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a rate window needs limit >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self._stamps: deque[float] = deque()
        self.max_held = 0  # the most stamps ever held at once: tests assert it never passes limit

    def held(self, now: float) -> int:
        edge = now - self.window_s
        stamps = self._stamps
        while stamps and stamps[0] <= edge:
            stamps.popleft()
        return len(stamps)

    def wait(self, now: float) -> float:
        """Seconds until one more request fits (0.0 when it fits now)."""
        held = self.held(now)
        if held < self.limit:
            return 0.0
        # The stamp that must leave the window for one more to fit. Never 0 while the window is
        # full: float rounding can put "stamp + window" a hair before `now` and still count it.
        return max(_TICK, self._stamps[held - self.limit] + self.window_s - now)

    def seed(self, stamps: list[float]) -> None:
        """Stamps sent before this process started (another run's, from the journal), oldest
        first; they count like our own but not in `max_held`."""
        merged = sorted([*stamps, *self._stamps])
        self._stamps = deque(merged)

    def add(self, now: float) -> None:
        self._stamps.append(now)
        self.max_held = max(self.max_held, self.held(now))


@dataclass(frozen=True, slots=True)
class WindowSpec:
    burst_limit: int
    burst_window_s: float
    average_limit: int
    average_window_s: float
    margin_s: float = 0.0

    @property
    def slot_s(self) -> float:
        """The average spacing the average window allows: one request per slot."""
        return self.average_window_s / self.average_limit


class Windows:
    """Every window a request must fit in: the burst window of its endpoint, and the shared
    average window. Plus a `not_before` time the caller can push out (a server hint)."""

    def __init__(self, spec: WindowSpec) -> None:
        self.spec = spec
        self.average = WindowLog(spec.average_limit, spec.average_window_s + spec.margin_s)
        self._bursts: dict[str, WindowLog] = {}
        self.not_before = float("-inf")

    def retune(self, spec: WindowSpec) -> None:
        """New limits (the preset the access token called for), keeping every stamp held."""
        self.spec = spec
        average = WindowLog(spec.average_limit, spec.average_window_s + spec.margin_s)
        average._stamps.extend(self.average._stamps)
        self.average = average
        old, self._bursts = self._bursts, {}
        for endpoint, log in old.items():
            self.burst(endpoint)._stamps.extend(log._stamps)

    def burst(self, endpoint: str) -> WindowLog:
        log = self._bursts.get(endpoint)
        if log is None:
            log = self._bursts[endpoint] = WindowLog(
                self.spec.burst_limit, self.spec.burst_window_s + self.spec.margin_s
            )
        return log

    def wait(self, endpoint: str, now: float) -> float:
        return max(self.burst(endpoint).wait(now), self.average.wait(now), self.not_before - now, 0.0)

    def take(self, endpoint: str, now: float) -> float:
        """Stamp the request in all its windows if it fits now and return 0.0; else return how
        long to wait and stamp nothing. Check and stamp are one step: nothing can slip between."""
        wait = self.wait(endpoint, now)
        if wait > 0.0:
            return wait
        self.burst(endpoint).add(now)
        self.average.add(now)
        return 0.0

    def seed(self, stamps: list[tuple[str, float]]) -> None:
        """Another run's recent sends, (endpoint, time on our clock), into the windows they hit."""
        by_endpoint: dict[str, list[float]] = {}
        for endpoint, at in stamps:
            by_endpoint.setdefault(endpoint, []).append(at)
        for endpoint, times in by_endpoint.items():
            self.burst(endpoint).seed(times)
        self.average.seed([at for _, at in stamps])

    def hold_until(self, until: float) -> None:
        """Admit nothing before `until` (e.g. the server said X-Ratelimit-Remaining: 0)."""
        self.not_before = max(self.not_before, until)

    def max_held(self) -> dict[str, int]:
        out = {f"burst {k}": v.max_held for k, v in self._bursts.items()}
        out["average"] = self.average.max_held
        return out
