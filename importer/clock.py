"""The two time seams every paced or retrying part takes, so tests can pass a fake clock and a
sleep that only counts (never real waiting). One definition, imported by all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

Clock = Callable[[], float]  # seconds, monotonic unless a caller says wall
Sleep = Callable[[float], Awaitable[None]]  # an awaitable nap of that many seconds
