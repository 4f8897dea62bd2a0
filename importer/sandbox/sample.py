"""Sample spreadsheets of valid pairings for a seed (.csv, or .xlsx through xlsxwriter).

Two shapes:
- `pairs`: customer_id,customer_email,payment_source_type,payment_source_id,reference. Even rows
  (0-based) name the customer by id only, odd rows by email only.
- `tokens`: customer_id,payment_method_id,customer_token,payment_source_token.

Rows follow the seed order (customer by customer, each with its sources). Asking for more rows
than `customers` customers hold grows the seed (it is prefix-stable), and `SampleInfo.customers`
says how many customers the sandbox must then be started with (`--customers`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from importer.sandbox.seed import SeedData, generate

SAMPLE_SHAPES = ("pairs", "tokens")
PAIR_HEADERS = ("customer_id", "customer_email", "payment_source_type", "payment_source_id", "reference")
TOKEN_HEADERS = ("customer_id", "payment_method_id", "customer_token", "payment_source_token")


@dataclass(frozen=True, slots=True)
class SampleInfo:
    path: str
    shape: str
    rows: int
    customers: int  # seed the sandbox with at least this many customers for every row to be valid


def sample_rows(
    data: SeedData, seed: int, shape: str = "pairs", rows: int | None = None
) -> Iterator[list[str]]:
    customers = {c.id: c for c in data.customers}
    methods = {m.payment_source_type: m.id for m in data.payment_methods}
    sources = data.sources if rows is None else data.sources[:rows]
    for i, source in enumerate(sources):
        customer = customers[source.customer_id]
        if shape == "tokens":
            yield [customer.id, methods[source.type], customer.customer_token, source.token]
        elif i % 2 == 0:
            yield [customer.id, "", source.type, source.id, f"sample-{seed}-{i + 1}"]
        else:
            yield ["", customer.email, source.type, source.id, f"sample-{seed}-{i + 1}"]


def write_sample(
    path: str | Path, seed: int, customers: int, rows: int | None = None, shape: str = "pairs"
) -> SampleInfo:
    """Write valid pairings for `seed` to `path` (.csv or .xlsx) and say what was written."""
    if shape not in SAMPLE_SHAPES:
        raise ValueError(f"sample shape must be one of {', '.join(SAMPLE_SHAPES)}, not {shape!r}")
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ValueError(f"{target}: a sample must be .csv or .xlsx")
    data = generate(seed, customers, min_sources=rows or 0)
    headers = TOKEN_HEADERS if shape == "tokens" else PAIR_HEADERS
    body = sample_rows(data, seed, shape, rows)
    count = _write_csv(target, headers, body) if suffix == ".csv" else _write_xlsx(target, headers, body)
    return SampleInfo(str(target), shape, count, len(data.customers))


def _write_csv(path: Path, headers: tuple[str, ...], rows: Iterator[list[str]]) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(headers)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _write_xlsx(path: Path, headers: tuple[str, ...], rows: Iterator[list[str]]) -> int:
    import xlsxwriter  # a project dependency; imported here so the server does not need it

    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = workbook.add_worksheet("customer_payment_sources")
    for col, header in enumerate(headers):
        sheet.write_string(0, col, header)
    count = 0
    for count, row in enumerate(rows, start=1):
        for col, value in enumerate(row):
            if value:
                sheet.write_string(count, col, value)  # strings, so ids never turn into numbers
    workbook.close()
    return count
