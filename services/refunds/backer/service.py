"""A backer's own refund: the full refund owed after canceling a charged pledge (or withdrawing after a change
of terms), asked for by the pledges service.

It is a batch of one like any single refund - same item, Stripe key ``refund:{item.id}``, ledger, fleet-wide
rate limit, workers, reporting to pledges - with two differences: no approval (refunding a backer who left is
their right, not an operator's decision), and ids derived from the pledge, so that asking again (a retry, the
pledges sweeper after a crash) returns the same refund: the batch's primary key makes a second one impossible,
whatever runs concurrently.
"""

from __future__ import annotations

import uuid
from typing import Any, cast

import structlog
from sqlalchemy import select
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from services.refunds.backer import schemas
from services.refunds.batches.repository import LedgerRepository, RefundBatchRepository
from services.refunds.batches.schemas import RefundFull, SelectPledges
from services.refunds.batches.service import actor_role, idempotency_key_for, refund_batch_service
from services.refunds.models import AuditAction, BatchKind, BatchStatus, ItemAction, ItemStatus, RefundBatch, RefundItem
from shared.auth import Principal
from shared.db import insert_for, utcnow

log = structlog.get_logger("refunds.backer")

BACKER_REFUND_NAMESPACE = uuid.UUID("0b7d2d8e-3f5a-4c1e-9a40-6d0f6c2b9e73")
STRIPE_REASON = "requested_by_customer"


def backer_batch_id(pledge_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(BACKER_REFUND_NAMESPACE, f"pledge:{pledge_id}:backer-refund")


def backer_item_id(pledge_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(BACKER_REFUND_NAMESPACE, f"pledge:{pledge_id}:backer-refund:item")


def present(item: RefundItem) -> schemas.BackerRefund:
    return schemas.BackerRefund(
        id=item.id,
        batch_id=item.batch_id,
        pledge_id=item.pledge_id,
        currency=item.currency,
        amount=item.amount,
        status=item.status,
        stripe_refund_id=item.stripe_refund_id,
        failure_code=item.failure_code,
        failure_reason=item.failure_reason,
        created_at=item.created_at,
        finished_at=item.finished_at,
    )


class BackerRefundService:
    async def request(
        self, session: AsyncSession, principal: Principal, pledge_id: uuid.UUID, data: schemas.BackerRefundCreate
    ) -> tuple[schemas.BackerRefund, bool]:
        """Create the pledge's backer refund, running at once, or return the one that exists.
        Returns (refund, created)."""
        now = utcnow()
        batch_id, item_id = backer_batch_id(pledge_id), backer_item_id(pledge_id)
        insert = insert_for(session)
        inserted = cast(
            "CursorResult[Any]",
            await session.execute(
                insert(RefundBatch)
                .values(
                    id=batch_id,
                    kind=BatchKind.BACKER,
                    campaign_id=data.campaign_id,
                    status=BatchStatus.RUNNING,
                    reason=data.reason,
                    stripe_reason=STRIPE_REASON,
                    selection=SelectPledges(pledge_ids=[pledge_id]).model_dump(mode="json"),
                    amount_rule=RefundFull().model_dump(mode="json"),
                    totals=[{"currency": data.currency, "amount": data.amount, "count": 1}],
                    exclusion_counts={},
                    item_count=1,
                    cancel_count=0,
                    requires_second_approval=False,
                    created_by=principal.subject,
                    created_by_role=actor_role(principal),
                    approved_by=f"backer:{data.backer_id}"[:200],
                    approved_at=now,
                    started_at=now,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            ),
        )
        created = inserted.rowcount == 1
        if created:
            await RefundBatchRepository(session).add_items(
                [
                    {
                        "id": item_id,
                        "batch_id": batch_id,
                        "seq": 0,
                        "campaign_id": data.campaign_id,
                        "pledge_id": pledge_id,
                        "backer_id": data.backer_id,
                        "action": ItemAction.REFUND,
                        "currency": data.currency,
                        "amount": data.amount,
                        "charged_amount": data.charged_amount,
                        "stripe_payment_intent_id": data.stripe_payment_intent_id,
                        "status": ItemStatus.QUEUED,
                        "idempotency_key": idempotency_key_for(item_id),
                        "next_attempt_at": now,
                        "attempts": 0,
                        "ledger_reserved": False,
                        "follow_up_required": False,
                        "report_due": False,
                        "created_at": now,
                        "updated_at": now,
                    }
                ]
            )
            await LedgerRepository(session).ensure(
                [
                    {
                        "pledge_id": pledge_id,
                        "currency": data.currency,
                        "charged_amount": data.charged_amount,
                        "committed_amount": min(data.refunded_amount, data.charged_amount),
                        "updated_at": now,
                    }
                ]
            )
            details = {"kind": BatchKind.BACKER.value, "reason": data.reason, "backer_id": data.backer_id}
            await refund_batch_service.audit(
                session, batch_id, AuditAction.CREATED, principal, details | {"amount": data.amount}
            )
            await refund_batch_service.audit(session, batch_id, AuditAction.STARTED, principal, details)
            await session.flush()
            log.info("refund.backer.created", pledge_id=str(pledge_id), item_id=str(item_id), amount=data.amount)
        item = (
            await session.execute(
                select(RefundItem).where(RefundItem.id == item_id).execution_options(populate_existing=True)
            )
        ).scalar_one()
        return present(item), created


backer_refund_service = BackerRefundService()
