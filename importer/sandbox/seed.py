"""Deterministic seed data: customers, one payment method per source type, payment sources.

Everything comes from `random.Random(seed)` in a fixed order (payment methods first, then each
customer followed by its 1–3 payment sources), so the data is identical across Python runs and
*prefix-stable*: seed N with K customers is exactly the first K customers of seed N with more.
That is what lets `write_sample` grow the seed to any number of rows.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from importer.models import PAYMENT_SOURCE_TYPES
from importer.sandbox.persist import SqliteState
from importer.sandbox.settings import SandboxSettings
from importer.sandbox.store import Store, random_alnum

SEED_TIMESTAMP = "2024-01-01T00:00:00.000Z"
CARD_TYPES = frozenset(
    {"adyen_payments", "axerve_payments", "braintree_payments", "checkout_com_payments", "stripe_payments"}
)
NON_CARD_NAMES = {
    "external_payments": "External payment",
    "klarna_payments": "Klarna",
    "paypal_payments": "PayPal",
    "satispay_payments": "Satispay",
    "wire_transfers": "Wire transfer",
}
METHOD_NAMES = {
    "adyen_payments": "Adyen",
    "axerve_payments": "Axerve",
    "braintree_payments": "Braintree",
    "checkout_com_payments": "Checkout.com",
    "external_payments": "External payment",
    "klarna_payments": "Klarna",
    "paypal_payments": "PayPal",
    "satispay_payments": "Satispay",
    "stripe_payments": "Stripe",
    "wire_transfers": "Wire transfer",
}
FIRST_NAMES = (
    "ada", "alan", "anna", "bruno", "carla", "chen", "dario", "elena", "farah", "giulia", "hugo", "ines",
    "jonas", "kenji", "lara", "marco", "nadia", "omar", "paola", "quinn", "rosa", "sven", "tariq", "ugo",
    "vera", "wen", "xenia", "yusuf", "zoe",
)  # fmt: skip
LAST_NAMES = (
    "rossi", "bianchi", "smith", "garcia", "muller", "dubois", "tanaka", "kowalski", "novak", "silva",
    "jensen", "ivanova", "okafor", "larsen", "moreau", "costa", "weber", "ricci", "byrne", "haddad",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class SeedCustomer:
    id: str
    email: str
    customer_token: str


@dataclass(frozen=True, slots=True)
class SeedSource:
    type: str
    id: str
    name: str
    token: str
    customer_id: str  # the customer this source is paired with in samples (not rendered by the API)


@dataclass(frozen=True, slots=True)
class SeedMethod:
    id: str
    payment_source_type: str
    name: str


@dataclass(slots=True)
class SeedData:
    payment_methods: list[SeedMethod] = field(default_factory=list)
    customers: list[SeedCustomer] = field(default_factory=list)
    sources: list[SeedSource] = field(default_factory=list)

    def method_for(self, source_type: str) -> SeedMethod | None:
        return next((m for m in self.payment_methods if m.payment_source_type == source_type), None)

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """The store records: (type, record) pairs."""
        base: dict[str, Any] = {"created_at": SEED_TIMESTAMP, "updated_at": SEED_TIMESTAMP, "reference": None,
                "reference_origin": None, "metadata": {}}  # fmt: skip
        for m in self.payment_methods:
            yield "payment_methods", {
                "id": m.id, "payment_source_type": m.payment_source_type, "name": m.name,
                "currency_code": "EUR", "disabled_at": None, **base,
            }  # fmt: skip
        for c in self.customers:
            yield "customers", {"id": c.id, "email": c.email, "status": "prospect", **base}
        for s in self.sources:
            yield s.type, {"id": s.id, "name": s.name, **base}


class _Ids:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def new(self) -> str:
        while True:
            id_ = random_alnum(self._rng, 10)
            if id_ not in self._used:
                self._used.add(id_)
                return id_


def _stream(seed: int) -> tuple[list[SeedMethod], Iterator[tuple[SeedCustomer, list[SeedSource]]]]:
    rng = random.Random(seed)
    ids = _Ids(rng)
    methods = [SeedMethod(ids.new(), t, METHOD_NAMES[t]) for t in PAYMENT_SOURCE_TYPES]

    def customers() -> Iterator[tuple[SeedCustomer, list[SeedSource]]]:
        count = 0
        k = 0
        while True:
            k += 1
            email = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{k}@example.com"
            token = "cus_" + random_alnum(rng, 14)
            customer = SeedCustomer(ids.new(), email, token)
            sources = []
            for _ in range(rng.randint(1, 3)):
                # The first ten sources walk through every type, so each type exists at least once.
                type_ = (
                    PAYMENT_SOURCE_TYPES[count]
                    if count < len(PAYMENT_SOURCE_TYPES)
                    else rng.choice(PAYMENT_SOURCE_TYPES)
                )
                count += 1
                last4 = f"{rng.randrange(10_000):04d}"
                name = f"XXXX-XXXX-XXXX-{last4}" if type_ in CARD_TYPES else NON_CARD_NAMES[type_]
                token_ps = "pm_" + random_alnum(rng, 20) + last4
                sources.append(SeedSource(type_, ids.new(), name, token_ps, customer.id))
            yield customer, sources

    return methods, customers()


def generate(seed: int, customers: int, *, min_sources: int = 0) -> SeedData:
    """The seed data for `seed`: `customers` customers, more if needed to reach `min_sources` sources."""
    methods, stream = _stream(seed)
    data = SeedData(payment_methods=methods)
    while len(data.customers) < customers or len(data.sources) < min_sources:
        customer, sources = next(stream)
        data.customers.append(customer)
        data.sources.extend(sources)
    return data


def load_seed_file(path: str) -> SeedData:
    """Load seed data from JSON: {"customers": [...], "payment_methods": [...], "payment_sources": [...]}.

    Customers need `email` (and may give `id`, `customer_token`); payment methods need
    `payment_source_type` (and may give `id`, `name`); payment sources need `type` (and may give
    `id`, `name`, `token`, `customer_id`). Missing ids are generated from a fixed seed.
    """
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    ids = _Ids(random.Random(0))
    data = SeedData()
    for m in raw.get("payment_methods", []):
        type_ = m["payment_source_type"]
        data.payment_methods.append(
            SeedMethod(m.get("id") or ids.new(), type_, m.get("name") or METHOD_NAMES[type_])
        )
    for c in raw.get("customers", []):
        data.customers.append(
            SeedCustomer(c.get("id") or ids.new(), c["email"], c.get("customer_token") or "")
        )
    for s in raw.get("payment_sources", []):
        type_ = s["type"]
        if type_ not in PAYMENT_SOURCE_TYPES:
            raise ValueError(
                f"{path}: payment source type {type_!r} is not one of {', '.join(PAYMENT_SOURCE_TYPES)}"
            )
        name = s.get("name") or ("XXXX-XXXX-XXXX-4242" if type_ in CARD_TYPES else NON_CARD_NAMES[type_])
        data.sources.append(
            SeedSource(
                type_, s.get("id") or ids.new(), name, s.get("token") or "", s.get("customer_id") or ""
            )
        )
    return data


def open_store(settings: SandboxSettings, wall: Callable[[], float] = time.time) -> Store:
    """The store for `settings`: the saved state when `state_path` holds one, else fresh seed data."""
    state = SqliteState(settings.state_path) if settings.state_path else None
    store = Store(state, wall=wall)
    if state is not None and state.get_meta("seeded") is not None:
        store.load_saved(state)
        return store
    data = (
        load_seed_file(settings.seed_file)
        if settings.seed_file
        else generate(settings.seed, settings.customers)
    )
    store.load(data.records(), persist=True)
    if state is not None:
        origin = {"seed": settings.seed, "customers": settings.customers, "seed_file": settings.seed_file}
        state.set_meta("seeded", json.dumps(origin))
    return store
