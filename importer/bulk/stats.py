"""What an imports-strategy run cost and achieved: DispatchStats plus the `imports` block of
summary.json (imports posted/interrupted/halved/resumed, lost answers, pre-check and read-back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from importer.stats import DispatchStats


@dataclass(slots=True)
class BulkStats(DispatchStats):
    imports_posted: int = 0
    imports_completed: int = 0
    imports_interrupted: int = 0
    imports_split: int = 0
    imports_resumed: int = 0
    lost_answers: int = 0
    rows_resent: int = 0
    rows_reconciled: int = 0
    polls: int = 0
    poll_pauses: int = 0
    precheck_requests: int = 0
    precheck_s: float = 0.0
    precheck: str = ""
    email_exports: int = 0  # batches of e-mails resolved through an export of customers
    readback: str = ""
    readback_requests: int = 0
    exports_created: int = 0
    export_links_expired: int = 0
    ids_read_back: bool = True
    posted_while_reading: int = 0
    stream_stop: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = DispatchStats.as_dict(self)
        out["strategy"] = "imports"
        share = self.precheck_s / self.elapsed_s if self.elapsed_s > 0 else 0.0
        out["imports"] = {
            "posted": self.imports_posted,
            "completed": self.imports_completed,
            "interrupted": self.imports_interrupted,
            "split_as_too_large": self.imports_split,
            "resumed": self.imports_resumed,
            "lost_answers": self.lost_answers,
            "rows_resent": self.rows_resent,
            "rows_reconciled": self.rows_reconciled,
            "polls": self.polls,
            "poll_pauses": self.poll_pauses,
            "precheck": self.precheck,
            "precheck_requests": self.precheck_requests,
            "email_exports": self.email_exports,
            "precheck_s": round(self.precheck_s, 3),
            "precheck_share_of_run": round(share, 3),
            "readback": self.readback,
            "readback_requests": self.readback_requests,
            "exports_created": self.exports_created,
            "export_links_expired": self.export_links_expired,
            "ids_read_back": self.ids_read_back,
            "posted_while_reading": self.posted_while_reading,
        }
        if self.stream_stop:
            out["stream_stop"] = self.stream_stop
        if not self.ids_read_back:
            out["notice"] = (
                "ids were not read back (--no-readback): rows of imports that completed without "
                "errors are `created` with an empty customer_payment_source_id"
            )
        return out
