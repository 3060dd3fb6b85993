"""The booking service's client of the policy service (`POST /v1/policies/evaluate`).

A change is never applied without a decision: any failure to get one (connection refused,
timeout, 5xx, an answer we cannot read) is `PolicyUnavailable` (503), and the agent offers a
callback instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from shared.errors import NotFound, ServiceUnavailable
from shared.observability.logging import correlation_id_var
from shared.observability.tracing import traced_transport
from shared.web.correlation import HEADER as CORRELATION_HEADER

log = logging.getLogger(__name__)


class PolicyUnavailable(ServiceUnavailable):
    code = "policy_unavailable"
    title = "Policy service unavailable"


@dataclass(frozen=True)
class PolicyDecision:
    allowed: bool
    reason: str
    fee: Decimal
    currency: str
    deadline: str | None
    quota_used: int
    quota_limit: int | None
    window_days: int

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> PolicyDecision:
        quota = body.get("quota") or {}
        return cls(
            allowed=bool(body["allowed"]),
            reason=str(body["reason"]),
            fee=Decimal(str(body.get("fee", "0.00"))),
            currency=str(body.get("currency", "EUR")),
            deadline=body.get("deadline"),
            quota_used=int(quota.get("used", 0)),
            quota_limit=None if quota.get("limit") is None else int(quota["limit"]),
            window_days=int(quota.get("window_days", 30)),
        )


class PolicyClient:
    def __init__(
        self,
        base_url: str,
        service_key: str | None,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.service_key = service_key
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=traced_transport(transport),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def evaluate(
        self, company_id: str, appointment_id: str, action: str, at: datetime | None = None
    ) -> PolicyDecision:
        """The policy decision for cancelling/rescheduling `appointment_id` now (or at `at`)."""
        if not self.service_key:
            raise PolicyUnavailable("No service key is configured to ask the policy service.")
        # The policy service's request JSON, as its contract spells it.
        body: dict[str, Any] = {"appointment_id": appointment_id, "action": action}
        if at is not None:
            body["at"] = at.isoformat()
        headers = {
            "Authorization": f"Bearer {self.service_key}",
            "X-Company-ID": company_id,
            CORRELATION_HEADER: correlation_id_var.get() or "",
        }
        try:
            response = await self._client.post("/v1/policies/evaluate", json=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning("policy service unreachable", extra={"error": repr(exc)})
            raise PolicyUnavailable("The policy service did not answer in time.") from exc
        if response.status_code == 404:
            raise NotFound("No such appointment.")
        if response.status_code != 200:
            log.warning("policy service answered %s", response.status_code)
            raise PolicyUnavailable(f"The policy service answered {response.status_code}.")
        try:
            return PolicyDecision.from_json(response.json())
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise PolicyUnavailable("The policy service answered something unreadable.") from exc
