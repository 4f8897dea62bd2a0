"""The PATCH of one row under `on_existing: update` (corrections.py says what it changes).

A PATCH sets values, so sending it twice leaves the record as sending it once: unlike a POST,
a PATCH whose answer was lost is simply sent again (within retry.max_attempts), no look-up first.
"""

from __future__ import annotations

from importer.client import ApiClient
from importer.corrections import update_request
from importer.models import Outcome, RowStatus
from importer.prepare import Work
from importer.wire import Ok, RowRejected


class Updater:
    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def update(self, work: Work) -> Outcome:
        assert work.fix is not None and work.update_id is not None
        attempts = self._client.attempts()
        answer = await self._client.request(
            update_request(work.update_id, work.fix), attempts, retry_ambiguous=True
        )
        verdict = answer.verdict
        status = answer.response.status if answer.response is not None else None
        if isinstance(verdict, Ok):
            return Outcome(
                RowStatus.UPDATED,
                work.update_id,
                work.customer_id,
                status,
                attempts=attempts.sent,
                changed_fields=work.fix.label,
            )
        code, detail = (
            (verdict.code, verdict.detail)
            if isinstance(verdict, RowRejected)
            else (
                getattr(verdict, "code", "UPDATE_FAILED"),
                f"{getattr(verdict, 'detail', 'no answer')} (gave up after {attempts.sent} attempts)",
            )
        )
        return Outcome(
            RowStatus.FAILED,
            work.update_id,
            work.customer_id,
            status,
            code,
            f"the entry exists and updating it failed: {detail}",
            attempts.sent,
            changed_fields=work.fix.label,
        )
