"""The shared 429 gate and the pacer, on a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio

from importer.limits import Windows, WindowSpec
from importer.pacing import Pacer, PauseGate


class FakeTime:
    """A clock whose sleeps advance it; each sleep also yields to the loop."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_gate_pauses_everyone_then_lets_one_probe_through() -> None:
    t = FakeTime()
    events: list[str] = []
    gate = PauseGate(
        t.clock,
        t.sleep,
        on_pause=lambda s: events.append(f"pause {s}"),
        on_resume=lambda s: events.append(f"resume {s}"),
    )
    gate.close(2.0)
    entered: list[int | None] = []

    async def enter() -> None:
        entered.append(await gate.enter())

    waiters = [asyncio.create_task(enter()) for _ in range(5)]
    await settle()
    # The timer slept the pause away; exactly one waiter became the probe.
    assert t.now == 2.0
    assert len(entered) == 1 and entered[0] is not None
    gate.probe_done(entered[0], rate_limited=False)
    await settle()
    assert entered[1:] == [None] * 4  # everyone else goes once the probe got through
    assert events == ["pause 2.0", "resume 2.0"]
    assert gate.paused_s == 2.0 and gate.pauses == 1 and gate.consecutive == 0
    await asyncio.gather(*waiters)
    await gate.aclose()


async def test_a_429_to_the_probe_closes_the_gate_again() -> None:
    t = FakeTime()
    gate = PauseGate(t.clock, t.sleep)
    gate.close(1.0)
    probe = await gate.enter()
    gate.close(1.0)  # the probe got a 429: the client closes first …
    gate.probe_done(probe, rate_limited=True)  # … so this report is for an old generation
    assert not gate.is_open and gate.consecutive == 2
    second = await gate.enter()
    assert second is not None and second != probe and t.now == 2.0
    gate.probe_done(second, rate_limited=False)
    assert gate.is_open
    await gate.aclose()


async def test_a_cancelled_probe_hands_the_role_on() -> None:
    t = FakeTime()
    gate = PauseGate(t.clock, t.sleep)
    gate.close(1.0)
    probe = await gate.enter()
    gate.give_back(probe)
    assert await gate.enter() == probe  # same generation, another caller
    await gate.aclose()


async def test_pacer_stamps_at_admission_and_waits_for_room() -> None:
    t = FakeTime()
    windows = Windows(WindowSpec(2, 1.0, 100, 60.0, 0.0))
    pacer = Pacer(windows, PauseGate(t.clock, t.sleep), t.clock, t.sleep)
    stamps = []
    for _ in range(5):
        await pacer.admit("POST /x")
        stamps.append(t.now)
    assert stamps == [0.0, 0.0, 1.0, 1.0, 2.0]


async def test_server_says_empty_holds_one_slot() -> None:
    t = FakeTime()
    windows = Windows(WindowSpec(50, 10.0, 100, 60.0, 0.0))
    pacer = Pacer(windows, PauseGate(t.clock, t.sleep), t.clock, t.sleep)
    pacer.server_says_empty(60.0, 100.0)
    await pacer.admit("GET /x")
    assert t.now == 0.6
    pacer.server_says_empty(None, None)  # no headers: the slot comes from our settings
    await pacer.admit("GET /x")
    assert t.now == 1.2


async def test_ready_waits_for_room_without_stamping() -> None:
    t = FakeTime()
    windows = Windows(
        WindowSpec(burst_limit=2, burst_window_s=10.0, average_limit=100, average_window_s=60.0)
    )
    gate = PauseGate(t.clock, t.sleep)
    pacer = Pacer(windows, gate, t.clock, t.sleep)
    await pacer.admit("POST /x")
    await pacer.admit("POST /x")  # the burst window is full until t = 10
    await pacer.ready("GET /y")  # another endpoint's burst window has room: no wait
    assert t.now == 0.0
    await pacer.ready("POST /x")
    assert t.now == 10.0
    # Waiting stamped nothing: the POST that follows still fits at once.
    assert windows.burst("POST /x").held(t.now) == 0 and windows.average.held(t.now) == 2
    await pacer.admit("POST /x")
    assert t.now == 10.0
    await gate.aclose()


async def test_requests_the_server_holds_beyond_ours_count_as_sent_now() -> None:
    t = FakeTime()
    windows = Windows(WindowSpec(50, 10.0, 10, 60.0, 0.0))
    pacer = Pacer(windows, PauseGate(t.clock, t.sleep), t.clock, t.sleep)
    first = await pacer.admit("GET /x")  # ours: 1 held
    assert first.average_held == 1
    assert pacer.server_holds(10, 2, first.average_held) == 7  # the server holds 8: 7 someone else's
    assert windows.average.held(t.now) == 8
    await pacer.admit("POST /y")
    assert t.now == 10.0  # nothing for one burst window: the other client's bursts have expired
    await pacer.admit("GET /x")
    assert t.now == 10.0  # two slots were left, as the server said
    await pacer.admit("GET /x")
    assert t.now == 60.0  # then the first stamp (ours, t=0) and the 7 others leave together
    assert pacer.server_holds(10, 9, ours=1) == 0  # the server holds only ours: nothing added


async def test_requests_still_in_flight_are_not_taken_for_counted_ones() -> None:
    t = FakeTime()
    windows = Windows(WindowSpec(50, 10.0, 10, 60.0, 0.0))
    pacer = Pacer(windows, PauseGate(t.clock, t.sleep), t.clock, t.sleep)
    first = await pacer.admit("GET /x")
    for _ in range(3):  # sent before the first answer: the server may not have counted them
        await pacer.admit("GET /x")
    # The first answer: the server holds 6 (5 foreign + our first); all 5 others are counted.
    assert pacer.server_holds(10, 4, first.average_held) == 5
    assert windows.average.held(t.now) == 9


async def test_seeded_stamps_of_a_previous_run_fill_the_windows() -> None:
    t = FakeTime()
    t.now = 100.0
    windows = Windows(WindowSpec(2, 10.0, 4, 60.0, 0.0))
    # The previous run: 2 POSTs 5 s ago (the burst window is full until t=105), a GET 50 s ago.
    windows.seed([("POST /x", 95.0), ("POST /x", 95.0), ("GET /y", 50.0)])
    pacer = Pacer(windows, PauseGate(t.clock, t.sleep), t.clock, t.sleep)
    await pacer.admit("POST /x")
    assert t.now == 105.0  # waited for the previous run's burst stamps, not a moment longer
    await pacer.admit("GET /y")
    assert t.now == 110.0  # average window (4) full until the GET of t=50 leaves at t=110
    assert windows.max_held()["average"] == 4
