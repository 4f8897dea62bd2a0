"""The backoff schedule (exponential ceilings, full jitter, the cap, Retry-After) and the Retrier
that token, request and create pause through."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import pytest

from importer.retry import Backoff, Retrier


class Highest:
    """An rng that always draws the top of the range: the schedule's ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


class Lowest:
    def uniform(self, a: float, b: float) -> float:
        return a


def test_ceiling_doubles_from_base_and_stops_at_cap() -> None:
    backoff = Backoff(0.5, 4.0, 5, rng=Highest())
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_full_jitter_can_be_zero() -> None:
    assert Backoff(0.5, 4.0, 5, rng=Lowest()).delay(3) == 0.0


def test_jitter_stays_inside_the_ceiling() -> None:
    backoff = Backoff(0.1, 1.0, 5, rng=random.Random(7))
    for n in range(1, 10):
        for _ in range(50):
            assert 0.0 <= backoff.delay(n) <= backoff.ceiling(n)


def test_retry_after_is_a_floor() -> None:
    backoff = Backoff(0.5, 4.0, 5, rng=Lowest())
    assert backoff.delay(1, retry_after_s=3.0) == 3.0
    assert Backoff(0.5, 4.0, 5, rng=Highest()).delay(4, retry_after_s=1.0) == 4.0


def test_huge_attempt_numbers_do_not_overflow() -> None:
    assert Backoff(0.5, 30.0, 5, rng=Highest()).delay(10_000) == 30.0


def test_may_retry_counts_the_first_try() -> None:
    backoff = Backoff(0.5, 4.0, 3)
    assert [backoff.may_retry(n) for n in (1, 2, 3)] == [True, True, False]


def test_invalid_schedules_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0, 3)
    with pytest.raises(ValueError):
        Backoff(0.5, 1.0, 0)


@dataclass
class Counted:
    retries: int = 0


def test_the_retrier_counts_each_pause_and_waits_the_backoff() -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    stats = Counted()
    retrier = Retrier(Backoff(0.5, 4.0, 3, rng=Highest()), sleep, stats)

    async def go() -> None:
        await retrier.pause(1)
        await retrier.pause(3)
        await retrier.pause(1, retry_after_s=7.0)  # the server's Retry-After is a floor

    asyncio.run(go())
    assert waited == [0.5, 2.0, 7.0]
    assert stats.retries == 3
    assert [retrier.may_retry(n) for n in (1, 2, 3)] == [True, True, False]


def test_a_retrier_without_stats_waits_without_counting() -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    asyncio.run(Retrier(Backoff(1.0, 4.0, 3, rng=Highest()), sleep).pause(2))
    assert waited == [2.0]
