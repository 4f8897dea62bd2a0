"""Counters and the request log the admin routes show. Nothing here ever holds a token."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class LogEntry:
    t: float  # monotonic seconds since the sandbox started
    method: str
    path: str  # the route template, e.g. /api/customers/{id}
    status: int  # 0 when the connection was dropped
    ip: str
    rate_limited: bool
    fault: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 6),
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "ip": self.ip,
            "rate_limited": self.rate_limited,
            "fault": self.fault,
        }


@dataclass
class Stats:
    log_max: int = 200_000
    requests: dict[str, Counter[str]] = field(default_factory=dict)  # endpoint -> status -> count
    rate_limited: int = 0  # 429s from the rate windows (including /oauth/token)
    storm_429: int = 0  # 429s from a storm
    faults: Counter[str] = field(default_factory=Counter)  # filled by `Faults`, one per injection
    created: Counter[str] = field(default_factory=Counter)
    deleted: Counter[str] = field(default_factory=Counter)
    tokens_issued: int = 0
    log: deque[LogEntry] = field(init=False)
    log_total: int = 0

    def __post_init__(self) -> None:
        self.log = deque(maxlen=self.log_max)  # the oldest entries go first

    def record(self, entry: LogEntry) -> None:
        endpoint = f"{entry.method} {entry.path}"
        self.requests.setdefault(endpoint, Counter())[str(entry.status)] += 1
        self.log.append(entry)
        self.log_total += 1

    def reset(self) -> None:
        self.requests.clear()
        self.rate_limited = self.storm_429 = self.tokens_issued = self.log_total = 0
        self.faults.clear()
        self.created.clear()
        self.deleted.clear()
        self.log.clear()

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": {k: dict(v) for k, v in sorted(self.requests.items())},
            "requests_total": sum(sum(c.values()) for c in self.requests.values()),
            "too_many_requests": {
                "rate_limit": self.rate_limited,
                "storm": self.storm_429,
                "total": self.rate_limited + self.storm_429,
            },
            "faults": dict(self.faults),
            "records_created": dict(self.created),
            "records_deleted": dict(self.deleted),
            "tokens_issued": self.tokens_issued,
        }
