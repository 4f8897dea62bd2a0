"""Injected faults, drawn from one seeded `random.Random` so a run can be replayed.

Each roll draws from the generator only when its fault is switched on, and each injection is
counted by kind (`error_5xx`, `commit_then_fail`, `connection_reset`, `latency`,
`slow_response`, `storm`, `unauthorized`, `conflict_409`, `imports_error_5xx`,
`imports_lost_answer`, `exports_error_5xx`).
"""

from __future__ import annotations

import contextlib
import math
import socket
import struct
from collections import Counter
from random import Random

from aiohttp import web

from importer.sandbox.settings import SandboxSettings


class Faults:
    def __init__(self, settings: SandboxSettings, counts: Counter[str], started: float) -> None:
        self.counts = counts
        self.started = started
        self.settings = settings
        self.rng = Random(settings.fault_seed)
        self.storm_from = 0.0
        self.storm_until = 0.0
        if settings.storm_start_s is not None:
            self.storm_from = started + settings.storm_start_s
            self.storm_until = self.storm_from + settings.storm_duration_s

    def update(self, settings: SandboxSettings) -> None:
        if settings.fault_seed != self.settings.fault_seed:
            self.rng = Random(settings.fault_seed)
        if settings.storm_start_s != self.settings.storm_start_s or (
            settings.storm_duration_s != self.settings.storm_duration_s
        ):
            start = self.started + (settings.storm_start_s or 0.0)
            self.storm_from, self.storm_until = start, start + settings.storm_duration_s
        self.settings = settings

    def start_storm(self, now: float, seconds: float) -> None:
        self.storm_from, self.storm_until = now, now + seconds

    def storm_remaining(self, now: float) -> float:
        return self.storm_until - now if self.storm_from <= now < self.storm_until else 0.0

    def _roll(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability

    def connection_reset(self) -> bool:
        return self._count("connection_reset", self._roll(self.settings.connection_reset))

    def latency(self) -> float:
        median, sigma = self.settings.latency_median_s, self.settings.latency_sigma
        if median <= 0:
            return 0.0
        self.counts["latency"] += 1
        return self.rng.lognormvariate(math.log(median), sigma) if sigma > 0 else median

    def error_5xx(self, kind: str) -> int | None:
        """`kind`: `create` (POST customer_payment_sources), `write` (its PATCH/DELETE) or `other`."""
        scope = self.settings.error_5xx_scope
        if not (scope == "api" or kind == "create" or (kind == "write" and scope == "writes")):
            return None
        if not self._count("error_5xx", self._roll(self.settings.error_5xx)):
            return None
        return self.rng.choice((500, 502, 503))

    def commit_then_fail(self, write: bool = False) -> str | None:
        """After a record was created (or, `write`, updated or deleted, with
        commit_then_fail_scope `writes`): "502" (answer 502) or "drop" (drop the connection)."""
        if write and self.settings.commit_then_fail_scope != "writes":
            return None
        if not self._count("commit_then_fail", self._roll(self.settings.commit_then_fail)):
            return None
        mode = self.settings.commit_then_fail_mode
        return self.rng.choice(("502", "drop")) if mode == "mixed" else mode

    def unauthorized(self, customer_id: str | None) -> bool:
        """A resource-level 401 for a POST naming this customer."""
        listed = {c.strip() for c in self.settings.unauthorized_customers.split(",") if c.strip()}
        hit = customer_id in listed or self._roll(self.settings.unauthorized)
        return self._count("unauthorized", hit)

    def conflict_409(self) -> bool:
        return self._count("conflict_409", self._roll(self.settings.conflict_409))

    def endpoint_5xx(self, kind: str) -> int | None:
        """`imports_error_5xx` / `exports_error_5xx`: a 5xx before anything is created."""
        if not self._count(kind, self._roll(getattr(self.settings, kind))):
            return None
        return self.rng.choice((500, 502, 503))

    def imports_lost_answer(self) -> str | None:
        """After an import was created: its answer is lost ("502" or "drop", as
        `commit_then_fail_mode` says)."""
        if not self._count("imports_lost_answer", self._roll(self.settings.imports_lost_answer)):
            return None
        mode = self.settings.commit_then_fail_mode
        return self.rng.choice(("502", "drop")) if mode == "mixed" else mode

    def slow_response(self) -> float:
        hit = self._count("slow_response", self._roll(self.settings.slow_response))
        return self.settings.slow_response_s if hit else 0.0

    def _count(self, kind: str, hit: bool) -> bool:
        if hit:
            self.counts[kind] += 1
        return hit


def drop_connection(request: web.Request) -> web.Response:
    """Reset the TCP connection (RST, via SO_LINGER 0) without answering.

    The returned response is never sent: aiohttp fails to write it to the closed transport and
    treats that as a client disconnection, which it logs at debug level only.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=499)
