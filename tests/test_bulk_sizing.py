"""bulk/sizing.py: how many rows the next import takes (pure; no sandbox needed)."""

from __future__ import annotations

import pytest

from importer.bulk.sizing import Moment, PaceMeter, SizingRule, next_chunk, water_level

ADAPTIVE = SizingRule("adaptive", max_rows=10_000, min_rows=1_000, target_s=10.0, slots=10)
FIXED = SizingRule("fixed", max_rows=10_000, min_rows=1_000, target_s=10.0, slots=10)


def moment(
    buffered: int,
    more: int | None = None,
    free: int = 10,
    remaining: tuple[int, ...] = (),
    pace: float | None = None,
) -> Moment:
    return Moment(buffered=buffered, more=more, free_slots=free, remaining=remaining, pace=pace)


def test_no_free_slot_or_no_rows_posts_nothing() -> None:
    assert next_chunk(ADAPTIVE, moment(5_000, free=0)) == 0
    assert next_chunk(ADAPTIVE, moment(0, more=0)) == 0


def test_fixed_cuts_full_chunks_and_a_partial_last_one() -> None:
    assert next_chunk(FIXED, moment(25_000)) == 10_000
    assert next_chunk(FIXED, moment(5_000)) == 0  # still reading: wait for a full chunk
    assert next_chunk(FIXED, moment(5_000, more=3_000)) == 0  # rows to come: wait
    assert next_chunk(FIXED, moment(5_000, more=0)) == 5_000


def test_the_ramp_starts_every_slot_with_small_imports_until_the_pace_is_known() -> None:
    assert next_chunk(ADAPTIVE, moment(9_000)) == 1_000
    assert next_chunk(ADAPTIVE, moment(999)) == 0  # under the minimum while reading: wait


def test_while_reading_an_import_is_the_target_duration_at_the_measured_pace() -> None:
    assert next_chunk(ADAPTIVE, moment(20_000, pace=500.0)) == 5_000  # 10 s at 500 rows/s
    assert next_chunk(ADAPTIVE, moment(20_000, pace=5_000.0)) == 10_000  # capped at chunk_size
    assert next_chunk(ADAPTIVE, moment(20_000, pace=20.0)) == 1_000  # never under the minimum


def test_a_free_slot_takes_what_is_buffered_rather_than_stay_idle() -> None:
    assert next_chunk(ADAPTIVE, moment(2_500, pace=500.0)) == 2_500


def test_on_a_fast_server_no_import_holds_less_than_the_minimum_work() -> None:
    rule = SizingRule("adaptive", max_rows=10_000, min_rows=1_000, target_s=10.0, slots=10, min_s=2.0)
    # 5,000 rows/s: 2 s of work is 10,000 rows; 2,500 buffered rows wait for more.
    assert next_chunk(rule, moment(2_500, pace=5_000.0)) == 0
    assert next_chunk(rule, moment(12_000, pace=5_000.0)) == 10_000
    # 500 rows/s: 2 s is 1,000 rows, the row minimum already.
    assert next_chunk(rule, moment(1_200, pace=500.0)) == 1_200
    # The last rows go whatever their size.
    assert next_chunk(rule, moment(2_500, more=0, pace=5_000.0)) == 2_500


def test_at_the_end_the_rows_left_are_shared_so_the_slots_end_together() -> None:
    # 10 free slots, 30,000 rows left, nothing running: 3,000 each.
    assert next_chunk(ADAPTIVE, moment(30_000, more=0, pace=500.0)) == 3_000
    # 5 slots still hold 4,000 rows each; 20,000 rows left: level (5 × 4,000 + 20,000) / 10.
    busy = (4_000,) * 5
    assert next_chunk(ADAPTIVE, moment(20_000, more=0, free=5, remaining=busy)) == 4_000
    # Rows not yet checked count towards the share; it waits for them while fewer are buffered
    # than the minimum.
    assert next_chunk(ADAPTIVE, moment(500, more=29_500)) == 0
    assert next_chunk(ADAPTIVE, moment(4_000, more=26_000)) == 3_000


def test_a_runt_waits_for_a_slot_that_frees_sooner_and_goes_along_when_none_does() -> None:
    # One slot free, the others nearly done (100 rows each): the share is the minimum, and the
    # 500 rows left go to the next slot that frees, long before this import ends (taking them
    # here would end the run 500 rows later).
    busy = (100,) * 9
    assert next_chunk(ADAPTIVE, moment(1_500, more=0, free=1, remaining=busy)) == 1_000
    # Every running import has more to do than this one: the runt would run alone after all of
    # them, so it goes along.
    long = (3_000,) * 9
    assert next_chunk(ADAPTIVE, moment(1_500, more=0, free=1, remaining=long)) == 1_500
    # Another slot is free now: the runt starts there at once.
    assert next_chunk(ADAPTIVE, moment(1_500, more=0, free=2, remaining=long[:8])) == 1_000


def test_every_slot_ends_with_a_short_last_import() -> None:
    rule = SizingRule(
        "adaptive", max_rows=10_000, min_rows=1_000, target_s=10.0, slots=10, min_s=2.0, last_s=2.0
    )
    # 500 rows/s: a last wave of 2 s is 1,000 rows a slot, 10,000 in all, held back; the
    # 40,000 before it are shared so the slots end together: 4,000 each.
    assert next_chunk(rule, moment(50_000, more=0, pace=500.0)) == 4_000
    # Without the hold, the 50,000 are shared at once.
    assert next_chunk(ADAPTIVE, moment(50_000, more=0, pace=500.0)) == 5_000
    # Rows still being checked count too.
    assert next_chunk(rule, moment(20_000, more=30_000, pace=500.0)) == 4_000
    # Only the last wave is left: shared as before (10 free slots, 10,000 rows: 1,000 each).
    assert next_chunk(rule, moment(10_000, more=0, pace=500.0)) == 1_000
    # The pace is not known yet: nothing can be sized in seconds, nothing is held.
    assert next_chunk(rule, moment(50_000, more=0)) == 5_000
    # 5,000 rows/s: a last import would be 10,000 rows (capped), so 100,000 are held; a run
    # that small is one wave, shared as before.
    assert next_chunk(rule, moment(50_000, more=0, pace=5_000.0)) == 10_000


def test_water_level() -> None:
    assert water_level(100, [], 10) == pytest.approx(10.0)
    assert water_level(100, [50, 50], 2) == pytest.approx(100.0)
    assert water_level(10, [100], 2) == pytest.approx(10.0)  # the busy slot is over the level
    assert water_level(0, [5], 3) == pytest.approx(0.0)


def test_the_pace_comes_from_polls_until_the_servers_own_span_replaces_them() -> None:
    meter = PaceMeter()
    meter.posted("a", 0.0)
    meter.running("a", 2.0, 1_000)
    assert meter.pace == pytest.approx(500.0)
    meter.running("a", 3.0, 1_000)  # no progress: no sample
    assert meter.pace == pytest.approx(500.0)
    meter.ended("b", 2_000, None)  # no span known: no sample
    assert meter.pace == pytest.approx(500.0)
    meter.ended("a", 2_000, 2.0)  # 1,000 rows/s by the server's clock: replaces the poll samples
    assert meter.pace == pytest.approx(1_000.0)
    # From now on polls are not sampled: two polls answered close together, one of them late,
    # would say 1,400 rows/s.
    meter.posted("c", 10.0)
    meter.running("c", 11.0, 1_000)
    meter.running("c", 11.5, 1_700)
    assert meter.pace == pytest.approx(1_000.0)
    meter.ended("c", 2_000, 4.0)  # 500 rows/s by the server's clock, smoothed in
    assert meter.pace == pytest.approx(750.0)
