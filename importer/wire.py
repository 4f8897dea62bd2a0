"""Requests and responses as values, and `classify` (pure: no I/O imports).

`classify(status, headers, body)` decides what an answer calls for:

    Ok           2xx
    Reauth       401 INVALID_TOKEN: the token expired or was revoked; get one new token, resend
    Denied       any other 401 (`UNAUTHORIZED`, "Access denied"): this token may not touch this
                 resource, e.g. one outside its market scope. The client renews the token once
                 and resends; still denied, the row fails. Many in a row abort the run (client.py)
    Retriable    429, 408, 5xx, timeouts, dropped connections; `ambiguous` when a POST may have
                 been committed anyway (5xx, timeout, drop), so it must be looked up before a resend
    RowRejected  3xx (never followed: the token must not go to another host) and other 4xx; the
                 row fails with the API's code and detail, and is never retried. A 409 ("Record
                 not unique") is one too; the POST path looks the pairing up before failing it
    Fatal        403: these credentials may not do this at all; the run cannot go on

`transport.py` holds the only sender that does I/O (aiohttp); this module is what the pure
planner, look-ups and the client's decisions import, so they never load aiohttp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

JSONAPI = "application/vnd.api+json"


@dataclass(frozen=True, slots=True)
class ApiRequest:
    """One request to the Core API. `query` is already percent-encoded (no leading `?`)."""

    method: str
    path: str
    query: str = ""
    body: Mapping[str, Any] | None = None
    # The path with its id replaced (`/api/customer_payment_sources/{id}`) for a request to one
    # record: the burst window is per endpoint, not per record.
    template: str | None = None

    @property
    def endpoint(self) -> str:
        """The rate-limit endpoint: method + path template, without the query."""
        return f"{self.method} {self.template or self.path}"


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when the body is empty or not JSON


class TransportFailure(Exception):
    """No HTTP answer. `kind`: `connect` (never reached the server), `timeout` or `connection`
    (the request may have been received and processed)."""

    def __init__(self, kind: str, what: str) -> None:
        super().__init__(f"{kind}: {what}")
        self.kind = kind
        self.what = what


# -- classification (pure) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ok:
    pass


@dataclass(frozen=True, slots=True)
class Reauth:
    pass


@dataclass(frozen=True, slots=True)
class Denied:
    http_status: int
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Retriable:
    reason: str  # rate_limited | server_error | timeout | connection
    http_status: int | None
    code: str
    detail: str
    ambiguous: bool = False
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class RowRejected:
    http_status: int
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class Fatal:
    http_status: int | None
    code: str
    detail: str


Verdict = Ok | Reauth | Denied | Retriable | RowRejected | Fatal


def _epoch(text: str | None) -> float | None:
    """An HTTP-date (RFC 9110: IMF-fixdate, or the obsolete RFC 850 / asctime forms) as epoch seconds."""
    if not text:
        return None
    try:
        stamp = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if stamp.tzinfo is None:  # asctime carries no zone; HTTP dates are always GMT
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """`Retry-After` in seconds, from either form RFC 9110 allows: delay-seconds or an HTTP-date.

    A date is measured from the response's own `Date` header when it has one (both stamps come
    from the server's clock, so our clock's skew does not matter), else from `now` (epoch
    seconds); a date in the past means 0. Without a usable value: None, and the caller pauses
    for one burst window, which is what a 429 without the header gets anyway."""
    value = headers.get("retry-after")
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        until = _epoch(value)
        if until is None:
            return None
        reference = _epoch(headers.get("date"))
        if reference is None:
            reference = now
        if reference is None:
            return None
        return max(0.0, until - reference)
    return seconds if seconds >= 0 else None


def error_parts(body: Any, status: int) -> tuple[str, str]:
    """(code, detail) from a JSON:API errors body: `detail (at <pointer>)`, several joined by `; `."""
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list) or not errors or not all(isinstance(e, dict) for e in errors):
        return f"HTTP_{status}", f"HTTP {status} from the API, without a JSON:API errors body"
    details = []
    for err in errors:
        text = str(err.get("detail") or err.get("title") or "")
        source = err.get("source")
        pointer = source.get("pointer") if isinstance(source, dict) else None
        details.append(f"{text} (at {pointer})" if pointer else text)
    return str(errors[0].get("code") or f"HTTP_{status}"), "; ".join(details)


def classify(status: int, headers: Mapping[str, str], body: Any, *, now: float | None = None) -> Verdict:
    """What an answer calls for. `now` (epoch seconds) is only used to read a `Retry-After`
    HTTP-date when the response has no `Date` header."""
    if 200 <= status < 300:
        return Ok()
    if 300 <= status < 400:
        host = urlsplit(headers.get("location", "")).hostname or "an unnamed location"
        return RowRejected(
            status,
            "REDIRECT",
            f"the API answered {status} redirecting to {host}; not followed, so the access token is "
            "not sent there; check commercelayer.base_url",
        )
    code, detail = error_parts(body, status)
    if status == 401 and code == "INVALID_TOKEN":
        return Reauth()
    if status == 401:
        return Denied(status, code, detail)
    if status == 403:
        return Fatal(status, code, detail)
    if status == 429:
        return Retriable("rate_limited", status, code, detail, retry_after_s=retry_after(headers, now))
    if status == 408:  # the server gave up waiting for our request: it did not process it
        return Retriable("timeout", status, code, detail)
    if status >= 500:
        return Retriable("server_error", status, code, detail, ambiguous=True)
    return RowRejected(status, code, detail)


def classify_failure(failure: TransportFailure) -> Retriable:
    if failure.kind == "connect":
        return Retriable(
            "connection", None, "CONNECTION_FAILED", f"could not connect to the API ({failure.what})"
        )
    if failure.kind == "timeout":
        return Retriable("timeout", None, "TIMEOUT", "no answer from the API in time", ambiguous=True)
    return Retriable(
        "connection", None, "CONNECTION_DROPPED", f"the connection dropped ({failure.what})", ambiguous=True
    )


class Sender(Protocol):
    """What the client and the token provider send through (`transport.AiohttpSender` in a run)."""

    async def send(self, request: ApiRequest, token: str) -> ApiResponse: ...

    async def post_token(self, url: str, body: Mapping[str, Any]) -> ApiResponse: ...
