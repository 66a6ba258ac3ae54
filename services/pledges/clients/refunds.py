"""The refunds service, as this service uses it: a backer's own refund (after a cancel or a withdrawal).

Contract (owned by refunds): ``POST /internal/pledges/{pledge_id}/backer-refund`` (service token,
``Idempotency-Key``) creates the pledge's one backer refund, running at once without approval, or returns the
existing one (ids derived from the pledge: asking again never refunds twice). Its outcome comes back later
through this service's ``POST /internal/pledges/{pledge_id}/refunds``, like every refund the refunds service
makes (``refund_id`` = the ``id`` answered here).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from services.pledges.clients.http import InternalClient, InternalUnavailable
from shared.auth import ServiceTokenSource


class RefundsUnavailable(Exception):
    """The refunds service could not be reached, answered 5xx, or refused (a 4xx is a contract bug on one side:
    the pledge is left for the sweeper and the error logged, never dropped)."""


@dataclass(frozen=True, slots=True)
class BackerRefund:
    id: uuid.UUID
    batch_id: uuid.UUID
    amount: int
    currency: str
    status: str  # queued | pending | succeeded | failed | canceled
    stripe_refund_id: str | None
    failure_reason: str | None


class RefundsClient:
    def __init__(self, base_url: str, token_source: ServiceTokenSource, *, timeout_seconds: float) -> None:
        self._http = InternalClient("refunds", base_url, token_source, timeout_seconds=timeout_seconds)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def backer_refund(
        self,
        *,
        pledge_id: uuid.UUID,
        reason: str,
        campaign_id: uuid.UUID,
        backer_id: str,
        currency: str,
        amount: int,
        charged_amount: int,
        refunded_amount: int,
        payment_intent_id: str,
    ) -> BackerRefund:
        body = {
            "reason": reason,
            "campaign_id": str(campaign_id),
            "backer_id": backer_id,
            "currency": currency,
            "amount": amount,
            "charged_amount": charged_amount,
            "refunded_amount": refunded_amount,
            "stripe_payment_intent_id": payment_intent_id,
        }
        try:
            status, answer = await self._http.request(
                "POST",
                f"/internal/pledges/{pledge_id}/backer-refund",
                json=body,
                idempotency_key=f"pledge:{pledge_id}:refund",
            )
        except InternalUnavailable as exc:
            raise RefundsUnavailable(str(exc)) from exc
        if status not in (200, 201) or not isinstance(answer, dict):
            detail = answer.get("code") if isinstance(answer, dict) else None
            raise RefundsUnavailable(f"refunds answered {status} {detail or ''}".strip())
        return _refund(answer)


def _refund(body: dict[str, Any]) -> BackerRefund:
    return BackerRefund(
        id=uuid.UUID(body["id"]),
        batch_id=uuid.UUID(body["batch_id"]),
        amount=int(body["amount"]),
        currency=str(body["currency"]),
        status=str(body["status"]),
        stripe_refund_id=body.get("stripe_refund_id"),
        failure_reason=body.get("failure_reason"),
    )
