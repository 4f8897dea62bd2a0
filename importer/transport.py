"""The one network seam that does I/O: `AiohttpSender`.

It owns the single `ClientSession` of a run. It never logs, and the Authorization header it
builds lives only inside `send`. The values it sends and returns, and `classify`, live in
`wire.py`, which has no I/O imports.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import aiohttp
from yarl import URL

from importer.wire import JSONAPI, ApiRequest, ApiResponse, Sender, TransportFailure


def _parse(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


class AiohttpSender:
    """Owns the run's only ClientSession: a pool of `concurrency` connections, config timeouts."""

    def __init__(self, base_url: str, *, concurrency: int, request_s: float, connect_s: float) -> None:
        self._base = base_url.rstrip("/")
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=request_s, sock_connect=connect_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> AiohttpSender:
        connector = aiohttp.TCPConnector(limit=self._concurrency)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        # aiohttp silently sends an idempotent request (GET, DELETE) a second time when a pooled
        # connection drops before the answer. A DELETE whose first send was processed then comes
        # back 404 and reads as "someone else deleted it", and neither send is paced or counted
        # here. Every resend must be ours (retry.py, the look-up-first protocol), so it is off.
        if hasattr(self._session, "_retry_connection"):
            self._session._retry_connection = False
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def url(self, request: ApiRequest) -> URL:
        text = self._base + request.path + (f"?{request.query}" if request.query else "")
        return URL(text, encoded=True)

    async def send(self, request: ApiRequest, token: str) -> ApiResponse:
        headers = {"Accept": JSONAPI, "Authorization": f"Bearer {token}"}
        data = None
        if request.body is not None:
            headers["Content-Type"] = JSONAPI
            data = json.dumps(request.body, separators=(",", ":"), ensure_ascii=False).encode()
        return await self._request(request.method, self.url(request), headers, data)

    async def post_token(self, url: str, body: Mapping[str, Any]) -> ApiResponse:
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        return await self._request("POST", URL(url), headers, json.dumps(body).encode())

    async def _request(
        self, method: str, url: URL, headers: dict[str, str], data: bytes | None
    ) -> ApiResponse:
        if self._session is None:
            raise RuntimeError("AiohttpSender used outside `async with`")
        try:
            # allow_redirects=False: a redirect would carry the Authorization header elsewhere.
            async with self._session.request(
                method, url, headers=headers, data=data, allow_redirects=False
            ) as resp:
                raw = await resp.read()
                return ApiResponse(resp.status, {k.lower(): v for k, v in resp.headers.items()}, _parse(raw))
        except TimeoutError:
            raise TransportFailure("timeout", f"{method} {url.path}") from None
        except aiohttp.ClientConnectorError as exc:
            raise TransportFailure("connect", f"{exc.host}:{exc.port}") from None
        except aiohttp.ClientError as exc:
            raise TransportFailure("connection", type(exc).__name__) from None


@contextlib.asynccontextmanager
async def run_sender(
    sender: Sender | None, base_url: str, *, concurrency: int, request_s: float, connect_s: float
) -> AsyncIterator[Sender]:
    """`sender` as given (a benchmark's instrumented one, say), else an `AiohttpSender` the run
    owns: opened here and closed when the run is over."""
    if sender is not None:
        yield sender
        return
    async with AiohttpSender(
        base_url, concurrency=concurrency, request_s=request_s, connect_s=connect_s
    ) as own:
        yield own
