"""Pure: `on_existing: update` — what an existing wallet entry needs so it says what the row says.

Only `reference`, `reference_origin` and `metadata` are compared, and only what the row gives: an
empty cell means "no opinion", never "clear it". Metadata is merged key by key: the row's keys
win, the record's other keys are kept, and `importer_key` is never added, changed or removed (it
is how `importer undo` knows a record is ours; an update must not claim a record someone else
made). Identical values give no change, so nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from importer.lookups import WalletEntry
from importer.models import Pairing
from importer.planner import CPS_ITEM, CPS_PATH, IMPORTER_KEY
from importer.wire import ApiRequest

_MISSING = object()


@dataclass(frozen=True, slots=True)
class Correction:
    attributes: dict[str, Any]  # what the PATCH sends
    changed: tuple[str, ...]  # `reference`, `reference_origin`, `metadata.<key>`, in that order

    @property
    def label(self) -> str:
        """results.csv's `changed_fields`."""
        return ";".join(self.changed)


def correction(pairing: Pairing, entry: WalletEntry) -> Correction | None:
    """The PATCH attributes that make `entry` agree with the row, or None when it already does."""
    attributes: dict[str, Any] = {}
    changed: list[str] = []
    for name in ("reference", "reference_origin"):
        want = getattr(pairing, name)
        # An attribute the look-up did not return is unknown, not empty: never PATCHed blindly.
        if want and name in entry.seen and want != getattr(entry, name):
            attributes[name] = want
            changed.append(name)
    wanted = {k: v for k, v in pairing.metadata.items() if k != IMPORTER_KEY}
    # A look-up answer without metadata cannot be merged into: sending the row's keys alone would
    # drop the record's others, so metadata is left as it is.
    if wanted and "metadata" in entry.seen and entry.metadata is not None:
        current = entry.metadata
        keys = [k for k, v in wanted.items() if current.get(k, _MISSING) != v]
        if keys:
            attributes["metadata"] = {**current, **wanted}
            changed.extend(f"metadata.{k}" for k in sorted(keys))
    return Correction(attributes, tuple(changed)) if attributes else None


def update_request(record_id: str, fix: Correction) -> ApiRequest:
    body = {"data": {"type": "customer_payment_sources", "id": record_id, "attributes": fix.attributes}}
    return ApiRequest("PATCH", f"{CPS_PATH}/{record_id}", body=body, template=CPS_ITEM)
