"""The running sandbox's state, shared by every handler through `request.app[SANDBOX]`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from importer.sandbox.faults import Faults
from importer.sandbox.ratelimit import ApiLimits
from importer.sandbox.resources import Renderer
from importer.sandbox.seed import open_store
from importer.sandbox.settings import FAULT_KEYS, SandboxSettings, coerce_setting
from importer.sandbox.stats import Stats


@dataclass
class RequestContext:
    """What the gateway middleware learns about one request, for the log and stats."""

    fault: str | None = None
    rate_limited: bool = False
    dropped: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def build_limits(settings: SandboxSettings) -> ApiLimits:
    return ApiLimits(
        burst_limit=settings.burst_limit_for,
        average_limit=settings.average_limit_for,
        burst_window=settings.burst_window,
        average_window=settings.average_window,
        interval_s=settings.interval_header,
        shared_pool=settings.shared_average_pool,
        token_limit=settings.token_limit,
        token_window=settings.token_window,
        count_rejected=settings.count_rejected,
    )


class Sandbox:
    def __init__(
        self,
        settings: SandboxSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.wall = wall
        self.started = clock()
        self.store = open_store(settings, wall)
        self.stats = Stats(log_max=settings.request_log_max)
        self.faults = Faults(settings, self.stats.faults, self.started)
        self.limits = build_limits(settings)

    def renderer(self, request: web.Request) -> Renderer:
        return Renderer(self.store, f"{request.scheme}://{request.host}", self.settings.env)

    def set_faults(self, changes: dict[str, Any]) -> SandboxSettings:
        """Change fault settings at run time; `storm_s: N` starts a storm of N seconds now."""
        changes = dict(changes)
        storm_s = changes.pop("storm_s", None)
        unknown = sorted(set(changes) - set(FAULT_KEYS))
        if unknown:
            raise ValueError(
                f"not a runtime fault setting: {', '.join(unknown)} (allowed: {', '.join(FAULT_KEYS)})"
            )
        typed = {key: coerce_setting(key, value) for key, value in changes.items()}
        self.settings = self.settings.with_overrides(**typed)
        self.faults.update(self.settings)
        if storm_s is not None:
            self.faults.start_storm(self.clock(), float(storm_s))
        return self.settings

    def reset(self) -> None:
        self.store.reset()
        self.stats.reset()
        self.limits.limiter.reset()

    def close(self) -> None:
        self.store.close()


SANDBOX: web.AppKey[Sandbox] = web.AppKey("sandbox", Sandbox)
CONTEXT: web.RequestKey[RequestContext] = web.RequestKey("sandbox.context", RequestContext)
