"""Pure: what goes into an import, how imports are named, and which strategy a run takes.

No I/O here. An import input is the REST create body (planner.py) flattened the way the Imports
API wants it: relationships as `<relationship>_id` (plus `payment_source_type`), attributes
as they are, and `metadata.importer_key` stamped exactly as a REST create stamps it, so a record
can be matched back to its row whichever strategy created it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from importer.models import Pairing
from importer.planner import IMPORTER_KEY, create_body

STRATEGIES = ("rest", "imports", "auto")


def import_input(pairing: Pairing, customer_id: str) -> dict[str, Any]:
    data = create_body(pairing, customer_id)["data"]
    attributes: dict[str, Any] = data["attributes"]
    out: dict[str, Any] = {"customer_id": customer_id}
    if pairing.payment_source_type and pairing.payment_source_id:
        out["payment_source_type"] = pairing.payment_source_type
        out["payment_source_id"] = pairing.payment_source_id
    if pairing.payment_method_id:
        out["payment_method_id"] = pairing.payment_method_id
    out.update(attributes)
    return out


def input_importer_key(item: dict[str, Any]) -> str:
    metadata = item.get("metadata")
    key = metadata.get(IMPORTER_KEY) if isinstance(metadata, dict) else None
    return str(key)


def chunk_reference(run_id: str, chunk_no: int) -> str:
    """Unique to the run and the chunk: the handle a lost or resumed import is found by."""
    return f"importer-{run_id}-{chunk_no:04d}"


def cut(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def halves(items: list[Any]) -> tuple[list[Any], list[Any]]:
    middle = (len(items) + 1) // 2
    return items[:middle], items[middle:]


def is_too_large(http_status: int | None, code: str, detail: str) -> bool:
    """The server refused an import for its size (413, or a 422 saying the inputs are too long)."""
    text = f"{code} {detail}".lower()
    return http_status == 413 or (http_status == 422 and ("too long" in text or "too_long" in text))


def is_queue_full(http_status: int | None, code: str, detail: str) -> bool:
    """The server has too many imports running (another client's, or ours after a crash)."""
    return http_status in (422, 429) and "too many imports" in f"{code} {detail}".lower()


@dataclass(frozen=True, slots=True)
class Choice:
    strategy: str  # rest | imports
    reason: str


def choose_strategy(configured: str, open_rows: int, threshold: int, *, dry_run: bool) -> Choice:
    if dry_run and configured != "rest":
        return Choice("rest", "a dry run only looks up, which the REST path does the same way")
    if configured == "rest":
        return Choice("rest", "strategy is rest (the default)")
    if configured == "imports":
        return Choice("imports", "strategy is imports")
    if open_rows >= threshold:
        return Choice(
            "imports", f"auto: {open_rows} rows to send, at or above imports.auto_threshold {threshold}"
        )
    return Choice("rest", f"auto: {open_rows} rows to send, below imports.auto_threshold {threshold}")


def rest_estimate_s(rows: int, average_limit: int, average_window_s: float) -> float:
    """The REST lower bound: one POST a row at the average write rate."""
    return rows * average_window_s / average_limit


def imports_estimate_s(
    rows: int, *, lookup_batch: int, average_limit: int, average_window_s: float, server_rows_per_s: float,
    in_flight: int, chunk_size: int,
) -> float:  # fmt: skip
    """A rough imports estimate: the wallet pre-check (one read per `lookup_batch` rows at the
    uncacheable rate), then the chunks processed `in_flight` at a time at `server_rows_per_s`."""
    precheck = (rows / lookup_batch) * average_window_s / average_limit
    parallel = max(1, min(in_flight, -(-rows // chunk_size)))
    return precheck + rows / (server_rows_per_s * parallel)
