"""Everything tests (and `importer demo`) need to run the sandbox in-process.

- `running_sandbox(settings=None, **overrides)`: an async context manager yielding a
  `SandboxHandle` (server on 127.0.0.1, free port);
- `SandboxThread`: the same on its own event loop in a daemon thread, with sync helpers;
- `fast_settings(**overrides)` and `sandbox_fixture(name="sandbox", **overrides)`: the pytest
  fixture the sandbox tests use, so other test folders can have the same one;
- `cps_body`, `seed_pairing`, `stored`: small helpers for writing assertions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from importer.models import PAYMENT_SOURCE_TYPES
from importer.sandbox.runner import Reply, SandboxClient, SandboxHandle, running_sandbox
from importer.sandbox.settings import SandboxSettings
from importer.sandbox.store import CPS
from importer.sandbox.thread import SandboxThread

__all__ = [
    "FAST_DEFAULTS",
    "Reply",
    "SandboxClient",
    "SandboxHandle",
    "SandboxThread",
    "cps_body",
    "fast_settings",
    "running_sandbox",
    "sandbox_fixture",
    "seed_pairing",
    "stored",
]

# Test-friendly defaults: windows 20x shorter (0.5 s burst, 3 s average), a small seed, fast imports.
FAST_DEFAULTS: dict[str, Any] = {
    "time_scale": 0.05,
    "customers": 20,
    "import_rows_per_s": 2000.0,
    "fault_seed": 1,
}


def fast_settings(**overrides: Any) -> SandboxSettings:
    return SandboxSettings(**{**FAST_DEFAULTS, **overrides})


def sandbox_fixture(name: str = "sandbox", **overrides: Any) -> Callable[..., Any]:
    """A pytest-asyncio fixture yielding a `SandboxHandle` on `fast_settings(**overrides)`.

    In a conftest.py: `sandbox = sandbox_fixture()`.
    """
    import pytest_asyncio  # test-only dependency, so imported here and not at module level

    async def fixture() -> AsyncIterator[SandboxHandle]:
        async with running_sandbox(fast_settings(**overrides)) as handle:
            yield handle

    return pytest_asyncio.fixture(fixture, name=name)


def cps_body(
    customer_id: str | None,
    source: tuple[str, str] | None = None,
    *,
    attributes: dict[str, Any] | None = None,
    payment_method_id: str | None = None,
) -> dict[str, Any]:
    """A POST /api/customer_payment_sources document; `source` is (payment source type, id)."""
    relationships: dict[str, Any] = {}
    if customer_id is not None:
        relationships["customer"] = {"data": {"type": "customers", "id": customer_id}}
    if source is not None:
        relationships["payment_source"] = {"data": {"type": source[0], "id": source[1]}}
    if payment_method_id is not None:
        relationships["payment_method"] = {"data": {"type": "payment_methods", "id": payment_method_id}}
    data: dict[str, Any] = {"type": CPS, "relationships": relationships}
    if attributes is not None:
        data["attributes"] = attributes
    return {"data": data}


def seed_pairing(handle: SandboxHandle, n: int = 0) -> tuple[str, tuple[str, str]]:
    """A (customer id, (payment source type, id)) pair of seeded records, a different one for each n."""
    customers = list(handle.store.tables["customers"].rows)
    sources = [(t, i) for t in PAYMENT_SOURCE_TYPES for i in handle.store.tables[t].rows]
    return customers[n % len(customers)], sources[n % len(sources)]


def stored(handle: SandboxHandle, type_: str, id_: str) -> dict[str, Any]:
    """The raw stored record (fails the test when there is none)."""
    record = handle.store.get(type_, id_)
    if record is None:
        raise AssertionError(f"no {type_} {id_} in the sandbox")
    return record
