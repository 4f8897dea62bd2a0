"""Serve the sandbox in-process on 127.0.0.1 and a free port: `running_sandbox` and its handle.

`SandboxHandle` carries the URLs and credentials a client needs, direct access to the store,
and async helpers over the /_sandbox admin routes; `SandboxClient` is a raw /api client for
assertions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from json import dumps, loads
from typing import Any

import aiohttp
from aiohttp import web

from importer.sandbox.app import create_app
from importer.sandbox.core import SANDBOX, Sandbox
from importer.sandbox.jsonapi import JSONAPI
from importer.sandbox.settings import SandboxSettings
from importer.sandbox.store import Store


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: Any  # parsed JSON, or the text when the body is not JSON


class SandboxClient:
    """A raw /api client for assertions: sends the JSON:API headers and the bearer token."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self.session = session
        self.base_url = base_url
        self.token = token

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        sent = {**SandboxHandle.api_headers(self.token), **(headers or {})}
        data = None if json is None else dumps(json)
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        async with self.session.request(method, url, data=data, params=params, headers=sent) as response:
            text = await response.text()
            try:
                body: Any = loads(text) if text else None
            except ValueError:
                body = text
            return Reply(response.status, response.headers, body)

    async def get(self, path: str, **params: str) -> Reply:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, body: object) -> Reply:
        return await self.request("POST", path, json=body)


@dataclass
class SandboxHandle:
    base_url: str  # the organisation root, e.g. http://127.0.0.1:PORT (the client appends /api/...)
    auth_url: str
    client_id: str
    client_secret: str
    app: web.Application

    @property
    def sandbox(self) -> Sandbox:
        return self.app[SANDBOX]

    @property
    def settings(self) -> SandboxSettings:
        return self.sandbox.settings

    @property
    def store(self) -> Store:
        return self.sandbox.store

    async def _admin(self, method: str, path: str, body: object = None) -> Any:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.base_url}/_sandbox/{path}", json=body) as response,
        ):
            data = await response.json()
            if response.status != 200:
                raise ValueError(f"/_sandbox/{path}: {response.status} {data}")
            return data

    async def stats(self) -> dict[str, Any]:
        return dict(await self._admin("GET", "stats"))

    async def requests_log(self) -> list[dict[str, Any]]:
        return list((await self._admin("GET", "requests"))["requests"])

    async def records(self, type_: str = "customer_payment_sources") -> list[dict[str, Any]]:
        return list((await self._admin("GET", f"records?type={type_}"))["records"])

    async def set_faults(self, **changes: Any) -> dict[str, Any]:
        return dict(await self._admin("POST", "faults", changes))

    async def expire_tokens(self) -> int:
        return int((await self._admin("POST", "tokens/expire"))["expired"])

    async def reset(self) -> None:
        await self._admin("POST", "reset")

    async def windows_max(self) -> dict[str, Any]:
        return dict(await self._admin("GET", "windows/max"))

    async def reset_windows(self) -> int:
        """Empty the rate windows now (as if they had slid); returns how many held a request."""
        return int((await self._admin("POST", "windows/reset"))["windows_reset"])

    async def token(self) -> str:
        """A fresh access token (one request to the token endpoint)."""
        body = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        async with aiohttp.ClientSession() as session, session.post(self.auth_url, json=body) as response:
            data = await response.json()
            if response.status != 200:
                raise ValueError(f"token request failed: {response.status} {data}")
            return str(data["access_token"])

    @asynccontextmanager
    async def client(self, token: str | None = None) -> AsyncIterator[SandboxClient]:
        """A `SandboxClient` with a fresh token (or `token`), closed when the block ends."""
        token = token or await self.token()
        async with aiohttp.ClientSession() as session:
            yield SandboxClient(session, self.base_url, token)

    @staticmethod
    def api_headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": JSONAPI, "Content-Type": JSONAPI}


@asynccontextmanager
async def running_sandbox(
    settings: SandboxSettings | None = None, **overrides: Any
) -> AsyncIterator[SandboxHandle]:
    """Serve the sandbox on `settings.host` (127.0.0.1) and a free port while the block runs."""
    settings = (settings or SandboxSettings()).with_overrides(**overrides)
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        base = f"http://{host}:{port}"
        yield SandboxHandle(base, f"{base}/oauth/token", settings.client_id, settings.client_secret, app)
    finally:
        await runner.cleanup()
