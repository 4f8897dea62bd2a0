"""The client-side rate windows: exact boundaries, atomic multi-window admission, and the
guarantee that the *server's* windows (arrival times, up to `margin` after the stamp) never
hold more than the limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from importer.limits import WindowLog, Windows, WindowSpec

POST = "POST /api/customer_payment_sources"
GET = "GET /api/customers"


def test_window_fits_again_exactly_one_window_later() -> None:
    log = WindowLog(limit=2, window_s=1.0)
    log.add(0.0)
    log.add(0.0)
    assert log.wait(0.0) == 1.0
    assert log.wait(0.999) == pytest.approx(0.001)
    assert log.wait(1.0) == 0.0
    assert log.held(1.0) == 0


def test_window_waits_for_the_stamp_that_must_leave() -> None:
    log = WindowLog(limit=3, window_s=10.0)
    for t in (0.0, 2.0, 5.0):
        log.add(t)
    # The oldest stamp (0.0) leaves at 10.0; the next one fits then, not before.
    assert log.wait(6.0) == pytest.approx(4.0)
    assert log.wait(10.0) == 0.0
    log.add(10.0)
    assert log.wait(10.0) == pytest.approx(2.0)  # now 2.0 must leave: at 12.0


def test_window_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        WindowLog(0, 1.0)
    with pytest.raises(ValueError):
        WindowLog(1, 0.0)


def spec(**kw: float) -> WindowSpec:
    values: dict[str, float] = {
        "burst_limit": 2,
        "burst_window_s": 1.0,
        "average_limit": 3,
        "average_window_s": 10.0,
        "margin_s": 0.0,
    }
    values.update(kw)
    return WindowSpec(
        int(values["burst_limit"]),
        values["burst_window_s"],
        int(values["average_limit"]),
        values["average_window_s"],
        values["margin_s"],
    )


def test_burst_window_is_per_endpoint_and_average_is_shared() -> None:
    windows = Windows(spec())
    assert windows.take(POST, 0.0) == 0.0
    assert windows.take(POST, 0.0) == 0.0
    assert windows.take(POST, 0.0) == pytest.approx(1.0)  # POST burst full
    assert windows.take(GET, 0.0) == 0.0  # GET has its own burst window …
    assert windows.take(GET, 0.5) == pytest.approx(9.5)  # … but the average (3 / 10 s) is shared


def test_a_refused_request_stamps_nothing() -> None:
    windows = Windows(spec(burst_limit=1, average_limit=100))
    assert windows.take(POST, 0.0) == 0.0
    for _ in range(5):
        assert windows.take(POST, 0.5) > 0  # refused by the burst window …
    assert windows.average.held(0.5) == 1  # … and never counted in the average one


def test_margin_lengthens_every_window() -> None:
    windows = Windows(spec(burst_limit=1, margin_s=0.25))
    windows.take(POST, 0.0)
    assert windows.take(POST, 1.0) == pytest.approx(0.25)
    assert windows.take(POST, 1.25) == 0.0


def test_hold_until_delays_everything() -> None:
    windows = Windows(spec(burst_limit=10, average_limit=10))
    windows.hold_until(2.0)
    assert windows.take(GET, 1.5) == pytest.approx(0.5)
    assert windows.take(GET, 2.0) == 0.0


def test_slot_is_one_average_interval() -> None:
    assert spec(average_limit=100, average_window_s=60.0).slot_s == pytest.approx(0.6)


def _server_max(arrivals: list[float], window_s: float) -> int:
    """The most arrivals a server window held: a request at `a` counts while now - a < window."""
    arrivals = sorted(arrivals)
    best, lo = 0, 0
    for hi, a in enumerate(arrivals):
        while arrivals[lo] <= a - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@settings(max_examples=150, deadline=None)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=0.3), min_size=1, max_size=120),
    delays=st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=120, max_size=120),
    endpoints=st.lists(st.sampled_from([POST, GET]), min_size=120, max_size=120),
)
def test_server_windows_never_exceed_the_limits(
    gaps: list[float], delays: list[float], endpoints: list[str]
) -> None:
    margin = 0.2
    s = spec(burst_limit=4, burst_window_s=1.0, average_limit=7, average_window_s=3.0, margin_s=margin)
    windows = Windows(s)
    now = 0.0
    arrivals: dict[str, list[float]] = {POST: [], GET: []}
    for i, gap in enumerate(gaps):
        now += gap
        while (wait := windows.take(endpoints[i], now)) > 0:
            now += wait
        # The request reaches the server up to `margin` after its stamp, in any order.
        arrivals[endpoints[i]].append(now + delays[i] * margin)
    for endpoint_arrivals in arrivals.values():
        assert _server_max(endpoint_arrivals, s.burst_window_s) <= s.burst_limit
    assert _server_max(arrivals[POST] + arrivals[GET], s.average_window_s) <= s.average_limit
    assert windows.max_held()["average"] <= s.average_limit
