"""A synchronous client for the sandbox's admin routes (`/_sandbox/...`), over plain urllib.

Shared by `SandboxThread` and by the test and benchmark wrappers that run the sandbox as a
child process: whatever runs the server, assertions read its state the same way.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any

CPS = "customer_payment_sources"
# No proxy: the sandbox is on loopback, and a proxy from the environment must never see it.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AdminClient:
    """Mix-in: the class provides `base_url` (the sandbox root, no `/api`), as an attribute or
    a property."""

    admin_timeout_s: float = 60.0

    if TYPE_CHECKING:

        @property
        def base_url(self) -> str: ...

    def admin(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(f"{self.base_url}/_sandbox/{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with _OPENER.open(request, timeout=self.admin_timeout_s) as response:
            return json.loads(response.read().decode("utf-8"))

    def stats(self) -> dict[str, Any]:
        return dict(self.admin("GET", "stats"))

    def requests_log(self) -> list[dict[str, Any]]:
        return list(self.admin("GET", "requests")["requests"])

    def records(self, type_: str = CPS) -> list[dict[str, Any]]:
        return list(self.admin("GET", f"records?type={type_}")["records"])

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        return dict(self.admin("POST", "faults", changes))

    def expire_tokens(self) -> int:
        return int(self.admin("POST", "tokens/expire")["expired"])

    def reset(self) -> None:
        self.admin("POST", "reset")

    def windows_max(self) -> dict[str, Any]:
        return dict(self.admin("GET", "windows/max"))

    def reset_windows(self) -> int:
        """Empty the rate windows now (as if they had slid); returns how many held a request."""
        return int(self.admin("POST", "windows/reset")["windows_reset"])

    def created(self) -> int:
        """Customer payment sources in the sandbox now."""
        return int(self.stats()["records"][CPS])
