"""Stripe webhooks as an inbox: verified, stored once (unique on the event id), applied to the refund items.

A refund's state can change long after it was created: ``pending`` → ``succeeded``, or ``succeeded`` →
``failed`` days later (the card was closed). Events move items forward only (``pending`` < ``succeeded`` <
``failed``/``canceled``), so a late or duplicated event never undoes a newer state. A refund that fails after
the fact is flagged for follow-up and never sent again automatically (the card it went to is not good), and
its amount goes back to the pledge's ledger. An event for an item whose outcome is not written yet (the worker
is between Stripe's answer and its own write) stays in the inbox and is applied by the workers' housekeeping.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, cast

import stripe
import structlog
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from services.refunds.batches.repository import LedgerRepository
from services.refunds.batches.service import refund_batch_service
from services.refunds.models import AuditAction, ItemStatus, RefundItem, StripeEvent
from shared.db import insert_for, utcnow
from shared.errors import BadRequest, ServiceUnavailable
from shared.webhooks import NotAnEvent, verified_event

log = structlog.get_logger("refunds.webhooks")

HANDLED_TYPES = frozenset({"refund.updated", "refund.failed", "charge.refund.updated"})
RANK = {"pending": 0, "requires_action": 0, "succeeded": 1, "failed": 2, "canceled": 2}
DEFERRED = "deferred"


class InvalidSignature(BadRequest):
    code = "invalid_signature"


class WebhookNotConfigured(ServiceUnavailable):
    code = "webhook_not_configured"


@dataclass(frozen=True)
class Receipt:
    status: str  # accepted | duplicate | ignored
    outcome: str | None = None


class StripeEventService:
    def verify(self, payload: bytes, signature: str | None, secret: str | None) -> dict[str, Any]:
        if not secret:
            raise WebhookNotConfigured("No webhook signing secret is configured.")
        if not signature:
            raise InvalidSignature("The Stripe-Signature header is missing.")
        try:
            return verified_event(payload, signature, secret)
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature("The Stripe-Signature header does not match this payload.") from exc
        except NotAnEvent as exc:
            raise BadRequest("The payload is not a Stripe event.", code="invalid_payload") from exc

    async def receive(self, session: AsyncSession, event: dict[str, Any]) -> Receipt:
        if event.get("type") not in HANDLED_TYPES:
            return Receipt("ignored")
        insert = insert_for(session)
        result = cast(
            "CursorResult[Any]",
            await session.execute(
                insert(StripeEvent)
                .values(id=event["id"], type=event["type"], payload=event, received_at=utcnow(), attempts=0)
                .on_conflict_do_nothing(index_elements=["id"])
            ),
        )
        if result.rowcount != 1:
            return Receipt("duplicate")
        outcome = await self.apply(session, event)
        await self._mark(session, event["id"], outcome)
        log.info("refund.webhook.received", event_id=event["id"], type=event["type"], outcome=outcome)
        return Receipt("accepted", outcome)

    async def _mark(self, session: AsyncSession, event_id: str, outcome: str) -> None:
        values: dict[str, Any] = {"attempts": StripeEvent.attempts + 1, "outcome": outcome}
        if outcome != DEFERRED:
            values["processed_at"] = utcnow()
        await session.execute(update(StripeEvent).where(StripeEvent.id == event_id).values(**values))

    async def apply(self, session: AsyncSession, event: dict[str, Any]) -> str:
        return await self.apply_refund(session, event.get("data", {}).get("object", {}))

    async def apply_refund(self, session: AsyncSession, refund: dict[str, Any]) -> str:
        """Move the item of this refund (a Stripe refund object) forward to the refund's state."""
        if refund.get("object") != "refund":
            return "not_a_refund"
        raw_item_id = (refund.get("metadata") or {}).get("refund_item_id")
        try:
            item_id = uuid.UUID(str(raw_item_id))
        except ValueError:
            return "not_ours"
        statement = select(RefundItem).where(RefundItem.id == item_id)
        if session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update()
        item = (await session.execute(statement)).scalar_one_or_none()
        if item is None:
            return "unknown_item"
        if item.status is ItemStatus.QUEUED:
            return DEFERRED
        if item.stripe_refund_id and item.stripe_refund_id != refund.get("id"):
            return "other_refund"
        new_status = str(refund.get("status"))
        if RANK.get(new_status, -1) <= RANK.get(item.stripe_status or "", -1):
            return "stale"
        now = utcnow()
        values: dict[str, Any] = {"stripe_status": new_status, "updated_at": now, "report_due": True}
        if new_status == "succeeded":
            values["status"] = ItemStatus.SUCCEEDED
        elif new_status in ("failed", "canceled"):
            reason = refund.get("failure_reason") or f"refund_{new_status}"
            values |= {
                "status": ItemStatus.FAILED,
                "failure_code": reason,
                "failure_reason": f"The refund {new_status} after Stripe accepted it ({reason}).",
                "follow_up_required": True,
                "follow_up_reason": f"refund {new_status} later ({reason}): not retried to the same card; "
                "refund the backer by other means",
                "ledger_reserved": False,
            }
            if item.ledger_reserved:
                await LedgerRepository(session).release([(item.pledge_id, item.amount)])
            await refund_batch_service.audit(
                session,
                item.batch_id,
                AuditAction.ITEM_FLAGGED,
                None,
                {
                    "item_id": str(item.id),
                    "pledge_id": str(item.pledge_id),
                    "refund": refund.get("id"),
                    "reason": reason,
                },
            )
        else:
            values["status"] = ItemStatus.PENDING
        await session.execute(update(RefundItem).where(RefundItem.id == item.id).values(**values))
        return f"item_{values['status'].value}"

    async def unprocessed(self, session: AsyncSession, limit: int = 100) -> list[str]:
        """Inbox events not applied yet (deferred on receipt), oldest first."""
        rows = await session.execute(
            select(StripeEvent.id)
            .where(StripeEvent.processed_at.is_(None))
            .order_by(StripeEvent.received_at)
            .limit(limit)
        )
        return list(rows.scalars())

    async def apply_stored(self, session: AsyncSession, event_id: str) -> str | None:
        """Apply one stored event and mark it; None if it was applied meanwhile. The caller owns the
        transaction (the workers' housekeeping commits each event on its own)."""
        event = await session.get(StripeEvent, event_id)
        if event is None or event.processed_at is not None:
            return None
        outcome = await self.apply(session, event.payload)
        await self._mark(session, event_id, outcome)
        return outcome


stripe_event_service = StripeEventService()
