"""Stripe webhooks as an inbox: verified on the raw body, stored unique on the event id (a redelivery is
acknowledged and ignored), then processed from the table and marked handled. What processing fails stays in
the table for the worker to retry.

Deliveries can arrive out of order: every state change is applied only if it is newer than what the row
already reflects (the event's ``created`` time, ties broken by how far along the state is), so an old
``refund.updated(pending)`` arriving after ``refund.failed`` changes nothing. The saga itself never depends on
a webhook: it learns every outcome from the (idempotent) call it made; webhooks record late changes
(a refund that settles or fails days later, a dispute) and keep the payment history current.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import structlog
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from services.pledges.models import Pledge, PledgePayment, PledgeRefund, RefundStatus, StripeEvent
from services.pledges.pledges.repository import PledgeRepository, RefundRepository, refresh_refund_totals
from shared.db import insert_for, utcnow

log = structlog.get_logger("pledges.webhooks")

HANDLED_EVENTS = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "payment_intent.requires_action",
        "setup_intent.succeeded",
        "setup_intent.setup_failed",
        "setup_intent.canceled",
        "setup_intent.requires_action",
        "charge.dispute.created",
        "charge.dispute.closed",
        "refund.created",
        "refund.updated",
        "refund.failed",
    }
)

REFUND_RANK = {RefundStatus.PENDING: 0, RefundStatus.SUCCEEDED: 1, RefundStatus.FAILED: 2, RefundStatus.CANCELED: 2}
INTENT_RANK = {
    "requires_payment_method": 0,
    "requires_confirmation": 0,
    "requires_action": 1,
    "processing": 2,
    "declined": 3,
    "succeeded": 4,
    "canceled": 4,
}


def newer(event_at: datetime, rank: int, seen_at: datetime | None, seen_rank: int) -> bool:
    if seen_at is None or event_at > seen_at:
        return seen_at is not None or rank >= seen_rank
    return event_at == seen_at and rank > seen_rank


class WebhookService:
    async def receive(self, session: AsyncSession, event: dict[str, Any]) -> str:
        """Store the event (once) and process it. Returns `accepted`, `duplicate` or `ignored`.

        The insert and the processing share the request's transaction (one commit per delivery); if processing
        fails, a savepoint undoes it and the event stays stored, unprocessed, for the worker to retry."""
        event_type = str(event.get("type"))
        if event_type not in HANDLED_EVENTS:
            return "ignored"
        event_id = str(event["id"])
        created_at = datetime.fromtimestamp(int(event.get("created") or 0), UTC)
        now = utcnow()
        insert = insert_for(session)
        result = cast(
            "CursorResult[Any]",
            await session.execute(
                insert(StripeEvent)
                .values(
                    id=event_id,
                    type=event_type,
                    stripe_created_at=created_at,
                    payload=event,
                    received_at=now,
                    processed_at=None,
                    attempts=0,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            ),
        )
        if result.rowcount != 1:
            return "duplicate"
        try:
            async with session.begin_nested():
                await self._apply(session, event_type, event, created_at)
                await session.execute(
                    update(StripeEvent).where(StripeEvent.id == event_id).values(processed_at=now, attempts=1)
                )
        except Exception as exc:
            log.exception("webhook.processing_failed", event_id=event_id)
            await session.execute(
                update(StripeEvent).where(StripeEvent.id == event_id).values(attempts=1, last_error=type(exc).__name__)
            )
        return "accepted"

    async def process(self, session: AsyncSession, event_id: str) -> bool:
        """Apply one stored event and mark it handled (False if it was handled meanwhile). The caller owns the
        transaction; if this raises, it rolls back and records the failure with ``record_failure``."""
        row = (
            await session.execute(
                select(StripeEvent).where(StripeEvent.id == event_id, StripeEvent.processed_at.is_(None))
            )
        ).scalar_one_or_none()
        if row is None:
            return False
        await self._apply(session, row.type, row.payload, row.stripe_created_at)
        row.processed_at = utcnow()
        row.attempts += 1
        return True

    async def record_failure(self, session: AsyncSession, event_id: str, error: Exception) -> None:
        await session.execute(
            update(StripeEvent)
            .where(StripeEvent.id == event_id)
            .values(attempts=StripeEvent.attempts + 1, last_error=type(error).__name__)
        )

    async def pending(self, session: AsyncSession, limit: int, older_than: datetime) -> list[str]:
        statement = (
            select(StripeEvent.id)
            .where(StripeEvent.processed_at.is_(None), StripeEvent.received_at < older_than)
            .order_by(StripeEvent.received_at)
            .limit(limit)
        )
        return list((await session.execute(statement)).scalars())

    async def _apply(self, session: AsyncSession, event_type: str, event: dict[str, Any], event_at: datetime) -> None:
        obj: dict[str, Any] = (event.get("data") or {}).get("object") or {}
        kind = event_type.split(".", 1)[0]
        if kind in ("payment_intent", "setup_intent"):
            await self._intent(session, obj, event_at)
        elif event_type.startswith("charge.dispute."):
            await self._dispute(session, event_type, obj)
        elif kind == "refund":
            await self._refund(session, obj, event_at)
        # Not charge.refunded (not subscribed): each refund's own refund.* events carry the state we record.

    async def _intent(self, session: AsyncSession, obj: dict[str, Any], event_at: datetime) -> None:
        payment = (
            await session.execute(select(PledgePayment).where(PledgePayment.stripe_id == str(obj.get("id"))))
        ).scalar_one_or_none()
        if payment is None:
            return  # not recorded yet: the saga records it from its own call's answer
        status = str(obj.get("status"))
        error = obj.get("last_payment_error") or obj.get("last_setup_error")
        if status == "requires_payment_method" and error:
            status = "declined"
        if newer(event_at, INTENT_RANK.get(status, 0), payment.stripe_event_at, INTENT_RANK.get(payment.status, 0)):
            payment.status = status
            if error and error.get("decline_code"):
                payment.decline_code = str(error["decline_code"])
            payment.stripe_event_at = event_at
            payment.updated_at = utcnow()

    async def _dispute(self, session: AsyncSession, event_type: str, obj: dict[str, Any]) -> None:
        intent_id = obj.get("payment_intent")
        if not intent_id:
            return
        disputed = not (event_type == "charge.dispute.closed" and obj.get("status") == "won")
        await session.execute(
            update(Pledge)
            .where(Pledge.stripe_payment_intent_id == str(intent_id))
            .values(disputed=disputed, updated_at=utcnow())
        )

    async def _refund(self, session: AsyncSession, obj: dict[str, Any], event_at: datetime) -> None:
        refund: PledgeRefund | None = await RefundRepository(session).by_stripe_id(str(obj.get("id")))
        if refund is None:
            return  # a refund we have not been told about (the refunds service reports its own)
        try:
            status = RefundStatus(str(obj.get("status")))
        except ValueError:
            return  # requires_action and the like: nothing to record
        if not newer(event_at, REFUND_RANK[status], refund.stripe_event_at, REFUND_RANK[refund.status]):
            return
        refund.status = status
        refund.failure_reason = obj.get("failure_reason") or refund.failure_reason
        refund.stripe_event_at = event_at
        refund.updated_at = utcnow()
        await session.flush()
        pledge = await PledgeRepository(session).locked(refund.pledge_id)
        if pledge is not None:
            await refresh_refund_totals(session, pledge)
            pledge.updated_at = utcnow()
        log.info("webhook.refund_updated", pledge_id=str(refund.pledge_id), status=status.value)


webhook_service = WebhookService()
