"""Sliding-window rate limits, as Commerce Layer documents them (pure: the caller passes `now`).

A request made at time `s` counts in a window of length `w` while `now - s < w`. So after a full
window at t=0, a request at exactly t=w is accepted again, and one at t=w-0.001 is not.

`RateLimiter.hit` checks several windows at once (burst per endpoint, average per class): the
request is accepted only if every window has room, and is then counted in all of them. Rejected
requests are counted only when `count_rejected` is set. Every window keeps its time stamps in a
deque, so each hit costs O(1) amortized.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import cast

CACHEABLE_RESOURCES = frozenset(
    {
        "bundles",
        "imports",
        "markets",
        "prices",
        "price_lists",
        "promotions",
        "skus",
        "sku_options",
        "stock_items",
        "stock_locations",
    }
)


class SlidingWindow:
    """The time stamps of the requests a window holds, oldest first."""

    __slots__ = ("_stamps", "window_s")

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._stamps: deque[float] = deque()

    def count(self, now: float) -> int:
        stamps = self._stamps
        edge = now - self.window_s
        while stamps and stamps[0] <= edge:
            stamps.popleft()
        return len(stamps)

    def add(self, now: float) -> None:
        self._stamps.append(now)

    def seconds_until_room(self, now: float, limit: int) -> float:
        """How long until one more request fits under `limit` (0 when it fits now)."""
        held = self.count(now)
        if held < limit:
            return 0.0
        return self._stamps[held - limit] + self.window_s - now


@dataclass(frozen=True, slots=True)
class Rule:
    """One window a request must fit in: `key` names it (e.g. ("burst", ip, endpoint))."""

    key: Hashable
    limit: int
    window_s: float


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: tuple[int, ...]  # per rule, after this request
    retry_after_s: float  # 0 when allowed
    blocked_by: Hashable | None = None


class RateLimiter:
    def __init__(self, *, count_rejected: bool = False) -> None:
        self.count_rejected = count_rejected
        self._windows: dict[Hashable, SlidingWindow] = {}
        # The most accepted requests each window ever held; with count_rejected the limiting
        # windows also hold rejected requests, so accepted ones are audited in windows of their own.
        self._audit: dict[Hashable, SlidingWindow] = {}
        self.max_held: dict[Hashable, int] = {}

    def _window(self, key: Hashable, window_s: float) -> SlidingWindow:
        window = self._windows.get(key)
        if window is None or window.window_s != window_s:
            window = self._windows[key] = SlidingWindow(window_s)
        return window

    def peek(self, rules: Sequence[Rule], now: float) -> Decision:
        """What `hit` would answer, without counting anything."""
        counts = [self._window(r.key, r.window_s).count(now) for r in rules]
        blocked = [i for i, (rule, held) in enumerate(zip(rules, counts, strict=True)) if held >= rule.limit]
        if blocked:
            wait = max(self._windows[rules[i].key].seconds_until_room(now, rules[i].limit) for i in blocked)
            remaining = tuple(max(0, r.limit - c) for r, c in zip(rules, counts, strict=True))
            return Decision(False, remaining, wait, rules[blocked[0]].key)
        remaining = tuple(r.limit - c - 1 for r, c in zip(rules, counts, strict=True))
        return Decision(True, remaining, 0.0)

    def hit(self, rules: Sequence[Rule], now: float) -> Decision:
        decision = self.peek(rules, now)
        if decision.allowed or self.count_rejected:
            for rule in rules:
                self._windows[rule.key].add(now)
        if decision.allowed:
            self._audit_accepted(rules, now)
        return decision

    def _audit_accepted(self, rules: Sequence[Rule], now: float) -> None:
        for rule in rules:
            if self.count_rejected:
                audit = self._audit.get(rule.key)
                if audit is None or audit.window_s != rule.window_s:
                    audit = self._audit[rule.key] = SlidingWindow(rule.window_s)
                audit.add(now)
                held = audit.count(now)
            else:
                held = self._windows[rule.key].count(now)
            if held > self.max_held.get(rule.key, 0):
                self.max_held[rule.key] = held

    def reset(self) -> None:
        self._windows.clear()
        self._audit.clear()
        self.max_held.clear()

    def forget_requests(self, now: float) -> int:
        """Empty every window now, as if each had slid past its last request; returns how many
        windows held one. The audit windows go too (else they would count requests the limiting
        windows forgot), but `max_held` keeps its record: it is history, not state."""
        held = sum(1 for window in self._windows.values() if window.count(now))
        self._windows.clear()
        self._audit.clear()
        return held


def rate_class(method: str, template: str) -> str:
    """`cacheable` for GETs of the cacheable resources, `uncacheable` for other GETs and all writes."""
    if method in ("GET", "HEAD"):
        parts = template.split("/")
        if len(parts) > 2 and parts[1] == "api" and parts[2] in CACHEABLE_RESOURCES:
            return "cacheable"
    return "uncacheable"


def average_pool(method: str, rate_cls: str, shared: bool) -> str:
    """The average-window pool: uncacheable reads and writes share one unless `shared` is off."""
    if rate_cls == "cacheable":
        return "cacheable"
    if shared:
        return "uncacheable"
    return "uncacheable_read" if method in ("GET", "HEAD") else "write"


def retry_after_header(seconds: float, *, http_date_at: float | None = None) -> str:
    """Whole seconds, at least 1; or, given `http_date_at` (the wall clock now, epoch seconds),
    the HTTP-date that many seconds later (RFC 9110 allows both forms)."""
    wait = max(1, math.ceil(seconds - 1e-9))
    if http_date_at is None:
        return str(wait)
    return http_date(math.ceil(http_date_at) + wait)


def http_date(epoch: float) -> str:
    """IMF-fixdate, e.g. `Wed, 21 Oct 2015 07:28:00 GMT`."""
    return format_datetime(datetime.fromtimestamp(math.floor(epoch), UTC), usegmt=True)


@dataclass(frozen=True, slots=True)
class ApiVerdict:
    """The answer for one /api request: whether it passes, and its X-Ratelimit-* numbers."""

    allowed: bool
    limit: int  # the average limit of the request's class
    interval_s: int
    remaining: int  # left in the average window after this request
    retry_after_s: float


class ApiLimits:
    """The per-IP burst/average windows of /api and the window of /oauth/token."""

    def __init__(
        self,
        *,
        burst_limit: Callable[[str], int],
        average_limit: Callable[[str], int],
        burst_window: float,
        average_window: float,
        interval_s: int,
        shared_pool: bool,
        token_limit: int,
        token_window: float,
        count_rejected: bool,
    ) -> None:
        self._burst_limit = burst_limit
        self._average_limit = average_limit
        self._burst_window = burst_window
        self._average_window = average_window
        self._interval_s = interval_s
        self._shared_pool = shared_pool
        self._token_limit = token_limit
        self._token_window = token_window
        self.limiter = RateLimiter(count_rejected=count_rejected)

    def api_rules(self, ip: str, method: str, template: str) -> list[Rule]:
        cls = rate_class(method, template)
        pool = average_pool(method, cls, self._shared_pool)
        endpoint = f"{'GET' if method == 'HEAD' else method} {template}"
        return [
            Rule(("average", ip, pool), self._average_limit(cls), self._average_window),
            Rule(("burst", ip, endpoint), self._burst_limit(cls), self._burst_window),
        ]

    def check_api(self, ip: str, method: str, template: str, now: float, *, count: bool = True) -> ApiVerdict:
        rules = self.api_rules(ip, method, template)
        decision = self.limiter.hit(rules, now) if count else self.limiter.peek(rules, now)
        return ApiVerdict(
            allowed=decision.allowed,
            limit=rules[0].limit,
            interval_s=self._interval_s,
            remaining=max(0, decision.remaining[0]),
            retry_after_s=decision.retry_after_s,
        )

    def check_token(self, ip: str, now: float) -> Decision:
        return self.limiter.hit(
            [Rule(("token", ip, "POST /oauth/token"), self._token_limit, self._token_window)], now
        )

    def max_windows(self) -> dict[str, dict[str, dict[str, float]]]:
        """The most accepted requests each window ever held, by kind and endpoint/pool (max over IPs)."""
        limits: dict[tuple[str, str], tuple[int, float]] = {}
        out: dict[str, dict[str, dict[str, float]]] = {"burst": {}, "average": {}, "token": {}}
        for key, held in self.limiter.max_held.items():
            kind, _ip, name = cast(tuple[str, str, str], key)
            entry = out[kind].setdefault(name, {"max": 0})
            entry["max"] = max(entry["max"], held)
            limits[(kind, name)] = self._limit_of(kind, name)
            entry["limit"], entry["window_s"] = limits[(kind, name)]
        return out

    def _limit_of(self, kind: str, name: str) -> tuple[int, float]:
        if kind == "token":
            return self._token_limit, self._token_window
        if kind == "average":
            cls = "cacheable" if name == "cacheable" else "uncacheable"
            return self._average_limit(cls), self._average_window
        method, _, template = name.partition(" ")
        return self._burst_limit(rate_class(method, template)), self._burst_window
