"""`SandboxThread`: the sandbox on its own event loop in a daemon thread (a context manager)."""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from importer.sandbox.admin_client import AdminClient
from importer.sandbox.runner import SandboxHandle, running_sandbox
from importer.sandbox.settings import SandboxSettings
from importer.sandbox.store import Store


class SandboxThread(AdminClient):
    """The sandbox on its own event loop in a daemon thread; a context manager.

    For synchronous tests and for `importer demo`, whose importer runs on the main thread's loop.
    The helpers are synchronous and go over HTTP to the admin routes. `store` may be read (not
    written) from other threads.
    """

    def __init__(self, settings: SandboxSettings | None = None, **overrides: Any) -> None:
        self._settings = (settings or SandboxSettings()).with_overrides(**overrides)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="sandbox", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._handle: SandboxHandle | None = None
        self._error: BaseException | None = None
        # No proxies: the sandbox is on loopback whatever http_proxy says.

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # handed to the starting thread
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        async with running_sandbox(self._settings) as handle:
            self._loop, self._stop, self._handle = asyncio.get_running_loop(), asyncio.Event(), handle
            self._ready.set()
            await self._stop.wait()

    def start(self, timeout: float = 30.0) -> SandboxThread:
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError("the sandbox thread did not start") from self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def handle(self) -> SandboxHandle:
        if self._handle is None:
            raise RuntimeError("the sandbox thread is not running")
        return self._handle

    @property
    def base_url(self) -> str:
        return self.handle.base_url

    @property
    def auth_url(self) -> str:
        return self.handle.auth_url

    @property
    def client_id(self) -> str:
        return self.handle.client_id

    @property
    def client_secret(self) -> str:
        return self.handle.client_secret

    @property
    def settings(self) -> SandboxSettings:
        return self.handle.settings

    @property
    def store(self) -> Store:
        return self.handle.store
