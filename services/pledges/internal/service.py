"""The internal API the refunds service builds on: refundable pledges, refund outcomes, cancel before charge."""

from __future__ import annotations

import uuid
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.pledges.internal import schemas
from services.pledges.models import FINAL, IN_PROGRESS, Pledge, PledgeRefund, PledgeStatus, RefundStatus
from services.pledges.pledges import exceptions
from services.pledges.pledges.cursor import decode_cursor, encode_cursor
from services.pledges.pledges.repository import PledgeRepository, RefundRepository, refresh_refund_totals
from services.pledges.pledges.service import pledge_service
from services.pledges.runtime import Runtime
from shared.db import utcnow

log = structlog.get_logger("pledges.internal")

HELD = (RefundStatus.PENDING, RefundStatus.SUCCEEDED)


def for_refund(pledge: Pledge) -> schemas.PledgeForRefund:
    return schemas.PledgeForRefund(
        pledge_id=pledge.id,
        campaign_id=pledge.campaign_id,
        backer_id=pledge.backer_id,
        tier_id=pledge.tier_id,
        status=pledge.status,
        funding_model=pledge.funding_model,
        currency=pledge.currency,
        total_amount=pledge.total_amount,
        charged_amount=pledge.charged_amount,
        refunded_amount=pledge.refunded_amount,
        refundable_amount=max(0, pledge.charged_amount - pledge.refunded_amount),
        stripe_payment_intent_id=pledge.stripe_payment_intent_id if pledge.charged_amount > 0 else None,
        disputed=pledge.disputed,
        created_at=pledge.created_at,
    )


class InternalPledgeService:
    async def list_for_campaign(
        self,
        session: AsyncSession,
        campaign_id: uuid.UUID,
        *,
        limit: int,
        cursor: str | None,
        tier_id: uuid.UUID | None,
        status: PledgeStatus | None,
        created_from: datetime | None,
        created_to: datetime | None,
    ) -> schemas.PledgeForRefundPage:
        statement = select(Pledge).where(Pledge.campaign_id == campaign_id)
        if tier_id is not None:
            statement = statement.where(Pledge.tier_id == tier_id)
        if status is not None:
            statement = statement.where(Pledge.status == status)
        if created_from is not None:
            statement = statement.where(Pledge.created_at >= created_from)
        if created_to is not None:
            statement = statement.where(Pledge.created_at < created_to)
        repository = PledgeRepository(session)
        rows = list(await repository.get_all(repository.page(statement, after=decode_cursor(cursor), limit=limit)))
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return schemas.PledgeForRefundPage(items=[for_refund(p) for p in rows], next_cursor=next_cursor)

    async def get(self, session: AsyncSession, pledge_id: uuid.UUID) -> schemas.PledgeForRefund:
        pledge = await PledgeRepository(session).get(pledge_id)
        if pledge is None:
            raise exceptions.PledgeNotFound()
        return for_refund(pledge)

    async def record_refund(
        self, session: AsyncSession, pledge_id: uuid.UUID, data: schemas.RefundOutcome
    ) -> schemas.PledgeForRefund:
        """Upsert one refund into the pledge's history and recompute what was refunded (in one transaction)."""
        pledge = await PledgeRepository(session).locked(pledge_id)
        if pledge is None:
            raise exceptions.PledgeNotFound()
        if data.currency != pledge.currency:
            raise exceptions.CurrencyMismatch()
        refunds = RefundRepository(session)
        existing = await refunds.for_update(data.refund_id)
        if existing is not None and existing.pledge_id != pledge.id:
            raise exceptions.RefundIdReused()
        sums = await refunds.sums(pledge.id)
        held = sum(sums.get(s, 0) for s in HELD)
        if existing is not None and existing.status in HELD:
            held -= existing.amount
        if data.status in HELD and held + data.amount > pledge.charged_amount:
            raise exceptions.RefundExceedsCharged()
        now = utcnow()
        if existing is None:
            session.add(
                PledgeRefund(
                    id=data.refund_id,
                    pledge_id=pledge.id,
                    stripe_refund_id=data.stripe_refund_id,
                    amount=data.amount,
                    currency=data.currency,
                    status=data.status,
                    failure_reason=data.failure_reason,
                    batch_id=data.batch_id,
                    source="refunds",
                    stripe_event_at=None,
                    created_at=now,
                    updated_at=now,
                )
            )
        else:
            existing.stripe_refund_id = data.stripe_refund_id or existing.stripe_refund_id
            existing.amount = data.amount
            existing.status = data.status
            existing.failure_reason = data.failure_reason
            existing.batch_id = data.batch_id or existing.batch_id
            existing.updated_at = now
        await session.flush()
        await refresh_refund_totals(session, pledge)
        pledge.updated_at = now
        await session.flush()
        log.info("pledge.refund_recorded", pledge_id=str(pledge.id), status=data.status.value)
        return for_refund(pledge)

    async def cancel(self, runtime: Runtime, pledge_id: uuid.UUID, reason: str) -> schemas.PledgeForRefund:
        """Cancel a pledge that was never charged: release its capacity, detach its saved card."""
        async with runtime.db.read_sessions() as session:
            pledge = await PledgeRepository(session).get(pledge_id)
        if pledge is None:
            raise exceptions.PledgeNotFound()
        if pledge.charged_amount > 0:
            raise exceptions.AlreadyCharged()
        if pledge.status in FINAL:
            return for_refund(pledge)
        if pledge.status in IN_PROGRESS:
            raise exceptions.PledgeInProgress()
        claimed = await pledge_service.start_compensation(
            runtime, pledge.id, allowed={PledgeStatus.ACTIVE, PledgeStatus.PAYMENT_FAILED}, reason=reason
        )
        if claimed is None:
            raise exceptions.PledgeInProgress()
        driven = await pledge_service.drive_claimed(runtime, claimed)
        return for_refund(driven)


internal_pledge_service = InternalPledgeService()
