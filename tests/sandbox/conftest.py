"""Fixtures for the sandbox tests: a running sandbox on 127.0.0.1 and a client with a token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from importer.sandbox.testing import SandboxClient, SandboxHandle, sandbox_fixture

sandbox = sandbox_fixture()


@pytest.fixture
async def client(sandbox: SandboxHandle) -> AsyncIterator[SandboxClient]:
    async with sandbox.client() as api:
        yield api
