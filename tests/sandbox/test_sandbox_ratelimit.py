"""Pure tests of the sliding windows: the caller passes `now`, so no test waits."""

from __future__ import annotations

from importer.sandbox.ratelimit import (
    ApiLimits,
    RateLimiter,
    Rule,
    SlidingWindow,
    average_pool,
    rate_class,
    retry_after_header,
)


def burst(limit: int = 25, window: float = 10.0) -> list[Rule]:
    return [Rule("burst", limit, window)]


def test_full_window_at_zero_frees_up_at_exactly_the_window_length() -> None:
    limiter = RateLimiter()
    assert all(limiter.hit(burst(), 0.0).allowed for _ in range(25))
    assert not limiter.hit(burst(), 9.999).allowed
    assert limiter.hit(burst(), 10.000).allowed


def test_window_slides_one_request_at_a_time() -> None:
    limiter = RateLimiter()
    for i in range(25):
        assert limiter.hit(burst(), i * 0.25).allowed  # t = 0.0 .. 6.0 (binary-exact steps)
    assert not limiter.hit(burst(), 9.9).allowed
    assert limiter.hit(burst(), 10.0).allowed  # the t=0.0 request left the window
    assert not limiter.hit(burst(), 10.1).allowed  # t=0.25 is still inside
    assert limiter.hit(burst(), 10.25).allowed


def test_remaining_counts_down_and_rejected_requests_do_not_count_by_default() -> None:
    limiter = RateLimiter()
    rules = burst(limit=3)
    assert [limiter.hit(rules, 0.0).remaining[0] for _ in range(3)] == [2, 1, 0]
    rejected = limiter.hit(rules, 1.0)
    assert not rejected.allowed and rejected.remaining == (0,)
    assert rejected.retry_after_s == 9.0
    for _ in range(5):
        limiter.hit(rules, 2.0)
    assert limiter.hit(rules, 10.0).allowed  # the rejected ones at t=1 and t=2 never counted


def test_count_rejected_keeps_a_hammering_client_blocked() -> None:
    limiter = RateLimiter(count_rejected=True)
    rules = burst(limit=3)
    for _ in range(3):
        limiter.hit(rules, 0.0)
    assert not any(limiter.hit(rules, 5.0).allowed for _ in range(3))
    assert not limiter.hit(rules, 10.0).allowed  # the three rejected requests at t=5 fill the window
    assert limiter.hit(rules, 15.0).allowed
    # The audit only ever saw accepted requests.
    assert limiter.max_held["burst"] == 3


def test_every_window_must_have_room_and_a_rejection_counts_in_none() -> None:
    limiter = RateLimiter()
    rules = [Rule("average", 4, 60.0), Rule("burst", 3, 10.0)]
    assert [limiter.hit(rules, 0.0).allowed for _ in range(4)] == [True, True, True, False]
    decision = limiter.hit(rules, 10.0)
    assert decision.allowed and decision.remaining == (0, 2)
    blocked = limiter.hit(rules, 11.0)
    assert not blocked.allowed and blocked.blocked_by == "average"
    assert blocked.retry_after_s == 49.0  # until the first t=0 request leaves the 60 s window


def test_peek_counts_nothing() -> None:
    limiter = RateLimiter()
    for _ in range(10):
        assert limiter.peek(burst(limit=1), 0.0).allowed
    assert limiter.hit(burst(limit=1), 0.0).allowed


def test_sliding_window_prunes_and_reports_room() -> None:
    window = SlidingWindow(10.0)
    for t in (0.0, 1.0, 2.0):
        window.add(t)
    assert window.count(5.0) == 3
    assert window.seconds_until_room(5.0, 3) == 5.0
    assert window.seconds_until_room(5.0, 2) == 6.0
    assert window.count(11.0) == 1
    assert window.seconds_until_room(11.0, 3) == 0.0


def test_classes_and_pools() -> None:
    assert rate_class("GET", "/api/imports") == "cacheable"
    assert rate_class("GET", "/api/imports/{id}") == "cacheable"
    assert rate_class("POST", "/api/imports") == "uncacheable"
    assert rate_class("GET", "/api/customers") == "uncacheable"
    assert rate_class("GET", "/api/customer_payment_sources") == "uncacheable"
    assert average_pool("POST", "uncacheable", shared=True) == "uncacheable"
    assert average_pool("GET", "uncacheable", shared=True) == "uncacheable"
    assert average_pool("POST", "uncacheable", shared=False) == "write"
    assert average_pool("GET", "uncacheable", shared=False) == "uncacheable_read"
    assert average_pool("GET", "cacheable", shared=False) == "cacheable"


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    assert retry_after_header(0.2) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.01) == "2"


def limits(shared: bool = True) -> ApiLimits:
    return ApiLimits(
        burst_limit={"uncacheable": 2, "cacheable": 5}.__getitem__,
        average_limit={"uncacheable": 3, "cacheable": 10}.__getitem__,
        burst_window=10.0,
        average_window=60.0,
        interval_s=60,
        shared_pool=shared,
        token_limit=2,
        token_window=60.0,
        count_rejected=False,
    )


def test_burst_is_per_endpoint_and_average_per_class() -> None:
    api = limits()
    ip = "127.0.0.1"
    assert api.check_api(ip, "POST", "/api/customer_payment_sources", 0.0).allowed
    assert api.check_api(ip, "POST", "/api/customer_payment_sources", 0.0).allowed
    assert not api.check_api(ip, "POST", "/api/customer_payment_sources", 0.0).allowed  # burst 2
    verdict = api.check_api(ip, "GET", "/api/customer_payment_sources", 0.0)  # another endpoint
    assert verdict.allowed and verdict.remaining == 0 and verdict.limit == 3 and verdict.interval_s == 60
    assert not api.check_api(ip, "GET", "/api/customers", 0.0).allowed  # shared average pool of 3 is full
    assert api.check_api(ip, "GET", "/api/imports", 0.0).allowed  # cacheable has its own pool
    assert api.check_api("10.0.0.2", "GET", "/api/customers", 0.0).allowed  # per IP


def test_separate_pools_when_not_shared() -> None:
    api = limits(shared=False)
    ip = "127.0.0.1"
    for endpoint in ("/api/a", "/api/b", "/api/c"):
        assert api.check_api(ip, "POST", endpoint, 0.0).allowed
    assert not api.check_api(ip, "POST", "/api/d", 0.0).allowed
    assert api.check_api(ip, "GET", "/api/customers", 0.0).allowed  # reads have their own pool


def test_token_window_and_max_windows_report() -> None:
    api = limits()
    assert api.check_token("ip", 0.0).allowed
    assert api.check_token("ip", 0.0).allowed
    assert not api.check_token("ip", 1.0).allowed
    api.check_api("ip", "POST", "/api/x", 0.0)
    report = api.max_windows()
    assert report["token"]["POST /oauth/token"] == {"max": 2, "limit": 2, "window_s": 60.0}
    assert report["burst"]["POST /api/x"] == {"max": 1, "limit": 2, "window_s": 10.0}
    assert report["average"]["uncacheable"] == {"max": 1, "limit": 3, "window_s": 60.0}
