"""`classify`: what each API answer calls for, and the exact texts rows and aborts carry."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from importer.auth import INVALID_CLIENT, auth_error_message, parse_token
from importer.wire import (
    ApiResponse,
    Denied,
    Fatal,
    Ok,
    Reauth,
    Retriable,
    RowRejected,
    TransportFailure,
    classify,
    classify_failure,
    error_parts,
    retry_after,
)


def errors(*items: dict[str, Any]) -> dict[str, Any]:
    return {"errors": list(items)}


VALIDATION = errors(
    {
        "title": "must exist",
        "detail": "payment_source - must exist",
        "code": "VALIDATION_ERROR",
        "source": {"pointer": "/data/relationships/payment_source"},
        "status": "422",
    }
)


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_is_ok(status: int) -> None:
    assert classify(status, {}, None) == Ok()


def test_422_is_rejected_with_code_detail_and_pointer() -> None:
    assert classify(422, {}, VALIDATION) == RowRejected(
        422, "VALIDATION_ERROR", "payment_source - must exist (at /data/relationships/payment_source)"
    )


def test_several_errors_are_joined() -> None:
    body = errors(
        {"detail": "a - bad", "code": "VALIDATION_ERROR"},
        {"detail": "b - worse", "code": "VALIDATION_ERROR", "source": {"pointer": "/data/b"}},
    )
    assert error_parts(body, 422) == ("VALIDATION_ERROR", "a - bad; b - worse (at /data/b)")


def test_a_body_that_is_not_json_api_still_explains_itself() -> None:
    assert error_parts(None, 502) == ("HTTP_502", "HTTP 502 from the API, without a JSON:API errors body")


def test_invalid_token_means_reauthenticate() -> None:
    body = errors(
        {
            "title": "Invalid token",
            "detail": "The access token you provided is invalid.",
            "code": "INVALID_TOKEN",
            "status": "401",
        }
    )
    assert classify(401, {}, body) == Reauth()


def test_a_401_that_is_not_about_the_token_is_denied_not_fatal() -> None:
    # Commerce Layer answers 401 UNAUTHORIZED "Access denied" for a resource the token may not
    # touch (outside its market scope): that is one row's problem, not the run's.
    body = errors({"title": "Access denied", "detail": "You are not authorized.", "code": "UNAUTHORIZED"})
    assert classify(401, {}, body) == Denied(401, "UNAUTHORIZED", "You are not authorized.")
    assert classify(401, {}, None) == Denied(
        401, "HTTP_401", "HTTP 401 from the API, without a JSON:API errors body"
    )


def test_403_is_fatal() -> None:
    body = errors({"title": "Access denied", "detail": "You are not authorized.", "code": "UNAUTHORIZED"})
    assert classify(403, {}, body) == Fatal(403, "UNAUTHORIZED", "You are not authorized.")


def test_429_is_retriable_and_reads_retry_after() -> None:
    verdict = classify(
        429, {"retry-after": "7"}, errors({"code": "TOO_MANY_REQUESTS", "detail": "slow down"})
    )
    assert isinstance(verdict, Retriable)
    assert (verdict.reason, verdict.retry_after_s, verdict.ambiguous) == ("rate_limited", 7.0, False)
    # An HTTP-date with neither a Date header nor a clock to measure it from: unusable.
    assert classify(429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None).retry_after_s is None  # type: ignore[union-attr]


# 2015-10-21 07:28:00 GMT as epoch seconds.
OCT21 = 1445412480.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:00 GMT", 30.0),  # IMF-fixdate
        ("Wednesday, 21-Oct-15 07:28:00 GMT", 30.0),  # obsolete RFC 850
        ("Wed Oct 21 07:28:00 2015", 30.0),  # obsolete asctime (no zone: GMT)
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past: go now
        ("12", 12.0),
        ("0", 0.0),
        ("-3", None),
        ("soon", None),
        ("", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(value: str, expected: float | None) -> None:
    assert retry_after({"retry-after": value}, now=OCT21 - 30) == expected


def test_retry_after_date_is_measured_from_the_servers_date_header() -> None:
    # Both stamps come from the server's clock: our clock (`now`, 1 h off here) does not matter.
    headers = {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT", "date": "Wed, 21 Oct 2015 07:27:45 GMT"}
    assert retry_after(headers, now=OCT21 + 3600) == 15.0
    assert retry_after(headers) == 15.0
    # A Date header that cannot be read falls back to `now`.
    assert retry_after({**headers, "date": "yesterday"}, now=OCT21 - 5) == 5.0


def test_a_429_with_an_http_date_pauses_until_then() -> None:
    verdict = classify(429, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, None, now=OCT21 - 8)
    assert isinstance(verdict, Retriable) and verdict.retry_after_s == 8.0


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_is_retriable_and_ambiguous(status: int) -> None:
    verdict = classify(status, {}, None)
    assert isinstance(verdict, Retriable) and verdict.ambiguous and verdict.http_status == status


def test_408_is_retriable_but_not_ambiguous() -> None:
    verdict = classify(408, {}, None)
    assert isinstance(verdict, Retriable) and not verdict.ambiguous


def test_redirect_is_a_row_failure_naming_the_host() -> None:
    verdict = classify(301, {"location": "https://evil.example.net/api/x"}, None)
    assert isinstance(verdict, RowRejected)
    assert verdict.code == "REDIRECT"
    assert "evil.example.net" in verdict.detail and "not followed" in verdict.detail


@pytest.mark.parametrize("status", [400, 404, 409, 415])
def test_other_4xx_are_rejected(status: int) -> None:
    assert isinstance(classify(status, {}, errors({"code": "X", "detail": "y"})), RowRejected)


def test_transport_failures() -> None:
    connect = classify_failure(TransportFailure("connect", "127.0.0.1:1"))
    timeout = classify_failure(TransportFailure("timeout", "POST /api/x"))
    dropped = classify_failure(TransportFailure("connection", "ServerDisconnectedError"))
    assert not connect.ambiguous  # never reached the server: nothing can have been created
    assert timeout.ambiguous and timeout.code == "TIMEOUT"
    assert dropped.ambiguous and dropped.code == "CONNECTION_DROPPED"


def test_invalid_client_gives_the_exact_abort_message() -> None:
    body = errors(
        {
            "title": "invalid_client",
            "detail": "Client authentication failed due to unknown client.",
            "code": "UNAUTHORIZED",
            "status": 401,
        }
    )
    assert auth_error_message(ApiResponse(401, {}, body)) == INVALID_CLIENT
    assert INVALID_CLIENT == (
        "authentication failed: the API rejected commercelayer.client_id/client_secret (invalid_client); "
        "check CL_CLIENT_ID and CL_CLIENT_SECRET for this environment"
    )


def test_token_lifetime_and_margin() -> None:
    token = parse_token(
        ApiResponse(200, {}, {"access_token": "secret-value", "expires_in": 7200}), 100.0, 60.0
    )
    assert token.renew_at == 100.0 + 7200 - 60
    assert "secret-value" not in repr(token)
    short = parse_token(ApiResponse(200, {}, {"access_token": "t", "expires_in": 4}), 0.0, 60.0)
    assert short.renew_at == 2.0  # the margin is capped at half the lifetime


def test_the_pure_modules_load_without_aiohttp() -> None:
    """The value types, `classify`, the planner and the look-ups import no I/O library: only
    `transport.py` (the sender) loads aiohttp."""
    probe = "import sys, importer.wire, importer.planner, importer.lookups; print('aiohttp' in sys.modules)"
    pure = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert pure.stdout.strip() == "False"
    sender = "import sys, importer.transport; print('aiohttp' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", sender], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "True"
