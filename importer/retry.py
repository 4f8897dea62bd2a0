"""The backoff schedule (`Backoff`, pure) and the one retry helper built on it (`Retrier`).

Full jitter (a uniform draw between 0 and the exponential ceiling) spreads the retries of many
workers that failed at the same moment, so they do not come back as one burst. The random source
is injected so tests can pin the draws.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from importer.clock import Sleep


class Rng(Protocol):
    """The one method of `random.Random` the schedule needs."""

    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """`delay(n)` is how long to wait before retry number n (n = 1 for the first retry)."""

    base_s: float
    cap_s: float
    max_attempts: int
    rng: Rng = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.base_s <= 0 or self.cap_s <= 0:
            raise ValueError("backoff delays must be > 0")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    def ceiling(self, retry: int) -> float:
        """The largest delay retry number `retry` may draw: base * 2^(retry-1), capped."""
        if retry < 1:
            return 0.0
        # min() before the power would be nicer, but 2**60 is still a float; cap the exponent so
        # a huge attempt number cannot overflow.
        return min(self.cap_s, self.base_s * 2.0 ** min(retry - 1, 60))

    def delay(self, retry: int, retry_after_s: float | None = None) -> float:
        """Full jitter in [0, ceiling]; never shorter than what the server asked for."""
        jitter = self.rng.uniform(0.0, self.ceiling(retry))
        if retry_after_s is not None and retry_after_s > jitter:
            return retry_after_s
        return jitter

    def may_retry(self, attempts_made: int) -> bool:
        """True while another attempt is allowed (`attempts_made` includes the first try)."""
        return attempts_made < self.max_attempts


class RetryCount(Protocol):
    """Where a retry is counted: the run's stats (`retries`)."""

    retries: int


@dataclass(frozen=True, slots=True)
class Retrier:
    """The one way the importer waits before sending something again, for the token request
    (auth.py), every API request (client.py) and a row's POST (create.py): whether another
    attempt is allowed, and the backoff pause before it, counted in the stats' `retries`.

    What may be resent is the caller's decision, not this helper's: a POST whose answer was
    lost is only resent after create.py's look-up found nothing (docs/exactly-once.md).
    `stats` None: the pause is not counted (the imports strategy's submissions report their
    lost answers on their own)."""

    backoff: Backoff
    sleep: Sleep
    stats: RetryCount | None = None

    def may_retry(self, attempts_made: int) -> bool:
        return self.backoff.may_retry(attempts_made)

    async def pause(self, retry: int, retry_after_s: float | None = None) -> None:
        """Count retry number `retry` and wait its backoff (never less than `retry_after_s`)."""
        if self.stats is not None:
            self.stats.retries += 1
        await self.sleep(self.backoff.delay(retry, retry_after_s))
