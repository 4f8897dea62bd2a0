"""One access token before a run, for what only the token can say (the organization's API address)."""

from __future__ import annotations

import asyncio

from importer.auth import AuthFailed, TokenProvider
from importer.config import Settings
from importer.errors import RunAborted
from importer.retry import Backoff
from importer.stats import DispatchStats
from importer.transport import AiohttpSender


async def fetch_token(settings: Settings) -> str:
    """The token, or RunAborted with the token provider's message (never the secret)."""
    retry = settings.retry
    loop = asyncio.get_running_loop()
    async with AiohttpSender(
        "", concurrency=1, request_s=settings.timeouts.request_s, connect_s=settings.timeouts.connect_s
    ) as sender:
        tokens = TokenProvider(
            sender,
            settings,
            DispatchStats(),
            clock=loop.time,
            sleep=asyncio.sleep,
            backoff=Backoff(retry.base_delay_s, retry.max_delay_s, retry.max_attempts),
        )
        try:
            return await tokens.get()
        except AuthFailed as exc:
            raise RunAborted(str(exc)) from None
