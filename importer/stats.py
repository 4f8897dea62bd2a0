"""What a run cost and achieved over the API: the numbers summary.json and the bench report."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class DispatchStats:
    """Counters bumped by the client, the token provider and the dispatcher (one event loop)."""

    requests: int = 0  # every HTTP request, token requests included
    posts: int = 0  # POST /api/customer_payment_sources, retries included
    patches: int = 0  # PATCH (`on_existing: update`), retries included
    deletes: int = 0  # DELETE (`importer undo`), retries included
    lookup_requests: int = 0  # every GET (email resolution, wallet look-ups, ambiguity checks)
    retries: int = 0  # requests sent again after a 429, 5xx, timeout or dropped connection
    rate_limited: int = 0  # 429 answers received
    tokens_fetched: int = 0
    paused_s: float = 0.0  # time the 429 gate was closed
    elapsed_s: float = 0.0
    rows_settled: int = 0
    ambiguous_outcomes: int = 0  # POSTs with an unknown outcome, settled by a look-up
    existence_lookups: int = 0  # --dry-run: GETs that checked payment sources/methods exist
    recreated_after_undo: int = 0  # pairings `undo` deleted, sent again (`run --recreate-undone`)
    # --fail-fast: the failure that stopped the run, (file, sheet, row): the first one learned of.
    first_failure: tuple[str, str, int] | None = None
    # From the wallet look-up that said "not there" to the answer of the POST it allowed: the
    # window in which another host could create the same pairing (docs/exactly-once.md).
    check_to_post_max_s: float = 0.0
    check_to_post_sum_s: float = 0.0
    check_to_post_n: int = 0

    def note_check_to_post(self, seconds: float) -> None:
        self.check_to_post_max_s = max(self.check_to_post_max_s, seconds)
        self.check_to_post_sum_s += seconds
        self.check_to_post_n += 1

    rate_limit_preset: str | None = None  # the preset the run used (from the token when not given)

    @property
    def throughput_rows_per_s(self) -> float:
        return self.rows_settled / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def lookups_per_100_rows(self) -> float:
        return 100.0 * self.lookup_requests / self.rows_settled if self.rows_settled else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "posts": self.posts,
            "patches": self.patches,
            "deletes": self.deletes,
            "lookup_requests": self.lookup_requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "tokens_fetched": self.tokens_fetched,
            "paused_s": round(self.paused_s, 3),
            "throughput_rows_per_s": round(self.throughput_rows_per_s, 3),
            "rows_settled": self.rows_settled,
            "ambiguous_outcomes": self.ambiguous_outcomes,
            "recreated_after_undo": self.recreated_after_undo,
            "lookups_per_100_rows": round(self.lookups_per_100_rows, 2),
            "existence_lookup_requests": self.existence_lookups,
            "check_to_post_max_s": round(self.check_to_post_max_s, 3),
            "check_to_post_mean_s": round(
                self.check_to_post_sum_s / self.check_to_post_n if self.check_to_post_n else 0.0, 3
            ),
            **(
                {"fail_fast_stopped_at": dict(zip(("file", "sheet", "row"), self.first_failure, strict=True))}
                if self.first_failure is not None
                else {}
            ),
            **({"rate_limit_preset": self.rate_limit_preset} if self.rate_limit_preset else {}),
        }
