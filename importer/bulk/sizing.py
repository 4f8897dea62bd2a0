"""Pure: how many buffered rows the next import takes, so the imports end together.

The server works `max_in_flight` imports at once, each at its own pace (rows a second, the same
for every import as far as a client can tell). A run is over when its *last* import is, so what
matters is that every slot is busy from the start and that the slots run dry together:

- **ramp**: until one import has shown its pace, imports are `min_chunk_size` rows, so all the
  slots are busy within moments of the first rows being read, not after 10 × 10,000 rows;
- **steady**: while the input is still being read, an import is the rows the server gets through
  in `chunk_target_s` at the measured pace (between the min and `chunk_size`), so no import
  posted before the last row was read runs far past the end of the run;
- **never idle**: a free slot does not wait for a full import while the minimum is buffered: it
  takes them. The client reads and checks rows at a finite speed, and a slot left empty is
  server time no later import gets back. The minimum is `min_chunk_size` rows, and, once the
  pace is known, `min_chunk_s` of work (every import costs requests from the write and read
  budget: on a server doing 5,000 rows a second, 1,000-row imports spent the 200-a-minute
  budget in seconds and the run waited for it);
- **end**: once the whole input is read, the number of rows left is known, and they are shared
  out so the slots end together (water-filling over the rows each running import still has to
  do). Rows stand for time here, because every import goes at the same pace;
- **last wave**: the rows of the imports that end last are read back, reconciled and reported
  after the server's last row, while nothing else runs. So the sharing holds back `last_wave_s`
  of work a slot, and every slot ends with an import of that size: on a 100,000-row run at 500
  rows a second, 10,000 rows are left to read back at the end instead of 60,000. It costs
  each slot one more import change (0.04–0.26 s of server time in trials); once the rows left
  are no more than that last wave, they are shared as above.

`sizing: fixed` keeps the plain rule: full chunks of `chunk_size`, the last one partial.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Sizing = Literal["adaptive", "fixed"]


@dataclass(frozen=True, slots=True)
class SizingRule:
    sizing: Sizing
    max_rows: int  # imports.chunk_size (lowered after the server refused a size)
    min_rows: int  # imports.min_chunk_size
    target_s: float  # imports.chunk_target_s
    slots: int  # imports.max_in_flight
    min_s: float = 0.0  # imports.min_chunk_s: once the pace is known, no import holds less work
    last_s: float = 0.0  # imports.last_wave_s: the work of every slot's last import (0: not held)


@dataclass(frozen=True, slots=True)
class Moment:
    buffered: int  # checked rows waiting for an import
    # Rows known to be coming that are not buffered yet (read, not yet checked); None while the
    # input is still being read, so how many are left is not known.
    more: int | None
    free_slots: int
    remaining: Sequence[int]  # per running import: its rows the server has not done yet
    pace: float | None  # rows a second of one import, as measured; None: not known yet


def next_chunk(rule: SizingRule, now: Moment) -> int:
    """Rows to post as the next import at this moment; 0: not now (wait for rows or a slot)."""
    if now.free_slots <= 0 or now.buffered <= 0:
        return 0
    cap = max(1, rule.max_rows)
    last = now.more == 0  # every row that is left is in the buffer
    if rule.sizing == "fixed":
        if now.buffered >= cap:
            return cap
        return now.buffered if last else 0
    floor = min(max(1, rule.min_rows), cap)
    if now.pace is not None:
        # Every import costs a POST and a read-back export out of the 200-a-minute budget: on a
        # fast server, imports of a few hundred ms each would spend it in seconds.
        floor = min(cap, max(floor, round(now.pace * rule.min_s)))
    if now.more is None:
        size = floor if now.pace is None else _clamp(round(now.pace * rule.target_s), floor, cap)
    else:
        left = now.buffered + now.more
        held = _last_wave(rule, now.pace, floor, cap) * rule.slots
        if left > held:
            left -= held  # poured now; the held rows make the last wave
        share = math.ceil(water_level(left, now.remaining, rule.slots))
        size = min(cap, max(share, floor))
        if last and now.buffered - size < floor and _runs_alone(now, size):
            # No runt left for later: no other slot frees before this import ends, so the runt
            # would run alone after every other import has ended.
            size = min(cap, now.buffered)
    if now.buffered >= size:
        return size
    if now.buffered >= floor or last:
        # A free slot is server time going to waste: it takes what there is rather than wait
        # for a full share (the rows come no faster than the client reads and checks them).
        return now.buffered
    return 0


def _runs_alone(now: Moment, size: int) -> bool:
    """Whether rows left after an import of `size` would wait for it: no other slot is free, and
    every running import has at least `size` rows still to do."""
    return now.free_slots <= 1 and all(left >= size for left in now.remaining)


def _last_wave(rule: SizingRule, pace: float | None, floor: int, cap: int) -> int:
    """Rows of every slot's last import (0: the rule holds none back, or the pace is unknown)."""
    if pace is None or rule.last_s <= 0:
        return 0
    return _clamp(round(pace * rule.last_s), floor, cap)


def water_level(buffered: int, remaining: Sequence[int], slots: int) -> float:
    """The load every slot ends at when `buffered` rows are poured into `slots` slots, the busy
    ones already holding `remaining` rows (a free slot holds 0). A free slot's share is the level."""
    loads = sorted([*remaining[:slots], *([0] * max(0, slots - len(remaining)))])
    poured, level = float(buffered), 0.0
    for i, load in enumerate(loads):
        below = i + 1  # slots at or under this level once it reaches the next load
        nxt = loads[i + 1] if i + 1 < len(loads) else math.inf
        room = (nxt - load) * below
        if poured <= room:
            return load + poured / below
        poured -= room
        level = nxt
    return level


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


@dataclass(slots=True)
class _Seen:
    at: float
    done: int


class PaceMeter:
    """An import's pace: from its polls while no import has ended (rows done since it was
    posted, or since the poll before), then only from the imports that end, as their size over
    the server's own started → completed span. A smoothed mean of the samples; None until the
    first one.

    Poll samples are the client's view: two polls answered moments apart, one of them late
    because the event loop was busy, gave 700 rows/s for a server doing 500, and the last
    shares of a run came out 40 % too big. The server's span has no such noise, so its first
    sample replaces the poll samples, and poll samples are not taken after it. Counting from
    the POST includes any wait in the server's queue, so the first poll sample is low, never
    high: a low pace only makes the next poll later and the next import bigger than ideal."""

    SMOOTHING = 0.5

    def __init__(self) -> None:
        self.pace: float | None = None
        self._seen: dict[str, _Seen] = {}
        self._spans = False  # a server span was sampled: poll samples are no longer taken

    def _sample(self, rows_per_s: float) -> None:
        if rows_per_s <= 0 or not math.isfinite(rows_per_s):
            return
        self.pace = (
            rows_per_s
            if self.pace is None
            else (self.SMOOTHING * rows_per_s + (1 - self.SMOOTHING) * self.pace)
        )

    def posted(self, import_id: str, at: float) -> None:
        self._seen[import_id] = _Seen(at, 0)

    def running(self, import_id: str, at: float, done: int) -> None:
        """A poll of a running import: `done` rows (processed + errors) at client time `at`."""
        if self._spans:
            return
        last = self._seen.get(import_id)
        if last is not None and done > last.done and at > last.at:
            self._sample((done - last.done) / (at - last.at))
        if last is None or done > last.done:
            self._seen[import_id] = _Seen(at, done)

    def ended(self, import_id: str, rows: int, span_s: float | None) -> None:
        """An import that ended; `span_s`: completed_at - started_at from the server, if known."""
        self._seen.pop(import_id, None)
        if span_s is not None and span_s > 0 and rows > 0:
            if not self._spans:
                self._spans, self.pace = True, None  # the first server span replaces poll samples
            self._sample(rows / span_s)


def server_span_s(attributes: dict[str, Any] | None) -> float | None:
    """completed_at - started_at of a finished import or export, by the server's clock; None if
    unknown."""
    try:
        started = datetime.fromisoformat(str((attributes or {})["started_at"]).replace("Z", "+00:00"))
        ended = datetime.fromisoformat(str((attributes or {})["completed_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return None
    return (ended - started).total_seconds()
