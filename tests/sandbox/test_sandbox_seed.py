"""Seed data and sample files: deterministic, prefix-stable, every type present, valid pairings."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from importer.models import PAYMENT_SOURCE_TYPES
from importer.sandbox.sample import PAIR_HEADERS, TOKEN_HEADERS, write_sample
from importer.sandbox.seed import CARD_TYPES, generate
from importer.sandbox.settings import DEMO_CUSTOMERS, DEMO_SEED

ID = re.compile(r"^[A-Za-z0-9]{10}$")

# The demo seed's first customer, as any Python run must produce it.
PROBE = (
    "import json; from importer.sandbox.seed import generate; d = generate(42, 50); "
    "print(json.dumps([d.customers[0].id, d.customers[0].email, d.sources[0].id, len(d.sources)]))"
)


def test_demo_seed_is_the_same_in_a_fresh_interpreter() -> None:
    data = generate(DEMO_SEED, DEMO_CUSTOMERS)
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123"},
    )
    first = data.customers[0]
    assert (
        out.stdout.strip() == f'["{first.id}", "{first.email}", "{data.sources[0].id}", {len(data.sources)}]'
    )


def test_seed_shape() -> None:
    data = generate(7, 40)
    assert len(data.customers) == 40
    assert [m.payment_source_type for m in data.payment_methods] == list(PAYMENT_SOURCE_TYPES)
    assert {s.type for s in data.sources} == set(PAYMENT_SOURCE_TYPES)
    per_customer = [sum(1 for s in data.sources if s.customer_id == c.id) for c in data.customers]
    assert min(per_customer) >= 1 and max(per_customer) <= 3
    ids = [c.id for c in data.customers] + [s.id for s in data.sources] + [m.id for m in data.payment_methods]
    assert len(set(ids)) == len(ids) and all(ID.match(i) for i in ids)
    emails = [c.email for c in data.customers]
    assert len(set(emails)) == len(emails)
    assert all(re.match(r"^[a-z]+\.[a-z]+\d+@example\.com$", e) for e in emails)
    for source in data.sources:
        if source.type in CARD_TYPES:
            assert re.match(r"^XXXX-XXXX-XXXX-\d{4}$", source.name)
            assert source.token.endswith(source.name[-4:])
        else:
            assert source.name and "XXXX" not in source.name


def test_seed_is_prefix_stable_and_seed_dependent() -> None:
    small, big = generate(3, 5), generate(3, 50)
    assert small.customers == big.customers[:5]
    assert small.sources == big.sources[: len(small.sources)]
    assert generate(4, 5).customers != small.customers


def test_write_sample_csv_pairs(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "s.csv", seed=5, customers=10)
    data = generate(5, 10)
    with open(info.path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == PAIR_HEADERS
    assert info.rows == len(rows) == len(data.sources) and info.customers == 10
    by_id = {c.id: c for c in data.customers}
    by_email = {c.email: c for c in data.customers}
    for i, (row, source) in enumerate(zip(rows, data.sources, strict=True)):
        assert (row["payment_source_type"], row["payment_source_id"]) == (source.type, source.id)
        if i % 2 == 0:
            assert row["customer_email"] == "" and by_id[row["customer_id"]].id == source.customer_id
        else:
            assert row["customer_id"] == "" and by_email[row["customer_email"]].id == source.customer_id
        assert row["reference"] == f"sample-5-{i + 1}"


def test_write_sample_grows_the_seed_for_many_rows(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "big.csv", seed=9, customers=10, rows=5000)
    assert info.rows == 5000
    assert len(generate(9, info.customers).sources) >= 5000 > len(generate(9, info.customers - 1).sources)


def test_write_sample_xlsx_tokens(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "t.xlsx", seed=5, customers=4, shape="tokens")
    frame = pd.read_excel(info.path, dtype=str, engine="calamine")
    assert tuple(frame.columns) == TOKEN_HEADERS
    data = generate(5, 4)
    methods = {m.payment_source_type: m.id for m in data.payment_methods}
    assert list(frame["payment_source_token"]) == [s.token for s in data.sources]
    assert list(frame["payment_method_id"]) == [methods[s.type] for s in data.sources]
    assert all(t.startswith("cus_") for t in frame["customer_token"])
