"""Typed clients for the internal routes this service consumes (service token, timeouts, safe retries).

The contracts are owned by the producing services; the shapes below are exactly what they promise:
- pledges: list a campaign's pledges, read one, record refund outcomes (many per call), cancel a never-charged
  pledge;
- campaigns: the campaign snapshot (to know its creator).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, Literal

import orjson
import structlog
from pydantic import BaseModel, ConfigDict

from shared.auth import ServiceTokenSource
from shared.http import ServiceClient, UpstreamUnavailable

log = structlog.get_logger("refunds.clients")

PAGE_SIZE = 500
MAX_REFUND_RECORDS = 500  # pledges' limit per call of POST /internal/refund-outcomes


class PledgeForRefund(BaseModel):
    """A pledge as the pledges service describes it for refunds (its contract)."""

    model_config = ConfigDict(extra="ignore")

    pledge_id: uuid.UUID
    campaign_id: uuid.UUID
    backer_id: str
    tier_id: uuid.UUID | None = None
    status: str
    funding_model: Literal["all_or_nothing", "flexible"]
    currency: str
    total_amount: int
    charged_amount: int
    refunded_amount: int
    refundable_amount: int
    stripe_payment_intent_id: str | None
    disputed: bool
    created_at: datetime


class RefundRecord(BaseModel):
    """What the pledges service is told about one refund: a record of ``POST /internal/refund-outcomes``."""

    pledge_id: uuid.UUID
    refund_id: uuid.UUID
    stripe_refund_id: str | None  # None only for a backer's refund that failed before reaching Stripe
    amount: int
    currency: str
    status: Literal["pending", "succeeded", "failed", "canceled"]
    failure_reason: str | None = None
    batch_id: uuid.UUID | None = None


class RefundRecordResult(BaseModel):
    """The pledges service's answer for one record: ``recorded``, or ``refused`` with the machine ``code``."""

    model_config = ConfigDict(extra="ignore")

    refund_id: uuid.UUID
    pledge_id: uuid.UUID
    result: Literal["recorded", "refused"]
    code: str | None = None
    detail: str | None = None


class PledgeRefused(Exception):
    """The pledges service answered with a 4xx problem (``code`` is its stable machine code)."""

    def __init__(self, status: int, code: str, detail: str | None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


def _refusal(response: Any) -> PledgeRefused:
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    detail = body.get("detail") if isinstance(body, dict) else None
    return PledgeRefused(response.status_code, str(code or response.status_code), detail)


def _check(service: str, response: Any) -> None:
    if response.status_code >= 500:
        raise UpstreamUnavailable(service, f"HTTP {response.status_code}")
    if response.status_code >= 400:
        raise _refusal(response)


class PledgesClient:
    def __init__(self, base_url: str, tokens: ServiceTokenSource, timeout_seconds: float) -> None:
        self._http = ServiceClient("pledges", base_url, tokens, timeout_seconds=timeout_seconds)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def iter_campaign_pledges(
        self, campaign_id: uuid.UUID, filters: dict[str, Any] | None = None
    ) -> AsyncIterator[list[PledgeForRefund]]:
        """Every pledge of the campaign matching ``filters``, page by page, in (created_at, id) order."""
        cursor: str | None = None
        params = {k: v for k, v in (filters or {}).items() if v is not None}
        while True:
            query = {**params, "limit": PAGE_SIZE} | ({"cursor": cursor} if cursor else {})
            response = await self._http.request("GET", f"/internal/campaigns/{campaign_id}/pledges", params=query)
            _check("pledges", response)
            body = response.json()
            yield [PledgeForRefund.model_validate(item) for item in body["items"]]
            cursor = body.get("next_cursor")
            if not cursor:
                return

    async def get_pledge(self, pledge_id: uuid.UUID) -> PledgeForRefund | None:
        response = await self._http.request("GET", f"/internal/pledges/{pledge_id}")
        if response.status_code == 404:
            return None
        _check("pledges", response)
        return PledgeForRefund.model_validate(response.json())

    async def record_refunds(self, records: Sequence[RefundRecord]) -> list[RefundRecordResult]:
        """Tell pledges up to ``MAX_REFUND_RECORDS`` outcomes in one call, one answer per record (in order).
        A call the pledges service refuses as a whole raises ``PledgeRefused`` (422: a record it cannot read).

        Every record is idempotent by its ``refund_id`` at pledges, so the call is safe to repeat; the
        ``Idempotency-Key`` (a digest of the body) lets the client retry it on a dropped connection or a 503."""
        body = {"records": [record.model_dump(mode="json") for record in records]}
        digest = hashlib.sha256(orjson.dumps(body)).hexdigest()[:32]
        response = await self._http.request(
            "POST", "/internal/refund-outcomes", json=body, idempotency_key=f"refund-outcomes:{digest}"
        )
        _check("pledges", response)
        return [RefundRecordResult.model_validate(result) for result in response.json()["results"]]

    async def cancel_pledge(self, pledge_id: uuid.UUID, *, reason: str, idempotency_key: str) -> PledgeForRefund:
        response = await self._http.request(
            "POST",
            f"/internal/pledges/{pledge_id}/cancel",
            json={"reason": reason},
            idempotency_key=idempotency_key,
        )
        _check("pledges", response)
        return PledgeForRefund.model_validate(response.json())


class CampaignsClient:
    def __init__(self, base_url: str, tokens: ServiceTokenSource, timeout_seconds: float) -> None:
        self._http = ServiceClient("campaigns", base_url, tokens, timeout_seconds=timeout_seconds)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def creator_of(self, campaign_id: uuid.UUID) -> str | None:
        """The campaign's creator id, or None if the campaign does not exist."""
        response = await self._http.request("GET", f"/internal/campaigns/{campaign_id}")
        if response.status_code == 404:
            return None
        _check("campaigns", response)
        return str(response.json()["creator_id"])
