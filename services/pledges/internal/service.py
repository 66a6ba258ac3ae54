"""The internal API the refunds service builds on: refundable pledges, refund outcomes, cancel before charge."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.pledges.internal import schemas
from services.pledges.internal.repository import RefundOutcomeRepository
from services.pledges.models import FINAL, IN_PROGRESS, Pledge, PledgeRefund, PledgeStatus, RefundStatus
from services.pledges.pledges import exceptions
from services.pledges.pledges.cursor import decode_cursor, encode_cursor
from services.pledges.pledges.repository import PledgeRepository, refresh_refund_totals
from services.pledges.pledges.service import pledge_service
from services.pledges.runtime import Runtime
from shared.db import utcnow
from shared.errors import ProblemError

log = structlog.get_logger("pledges.internal")

HELD = (RefundStatus.PENDING, RefundStatus.SUCCEEDED)
# A refund's states only move forward (Stripe: pending -> succeeded -> failed; failed and canceled are final), so
# an outcome ranked below the one recorded is a late retry of older news.
RANK = {RefundStatus.PENDING: 0, RefundStatus.SUCCEEDED: 1, RefundStatus.FAILED: 2, RefundStatus.CANCELED: 2}


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
        """One outcome: :meth:`record_refunds` with a single record; a refusal is the route's error."""
        record = schemas.RefundOutcomeRecord.model_construct(**dict(data), pledge_id=pledge_id)
        [refusal] = await self.record_refunds(session, [record])
        if refusal is not None:
            raise refusal
        pledge = await PledgeRepository(session).get(pledge_id)  # in the session already: no query
        assert pledge is not None
        return for_refund(pledge)

    async def record_refund_outcomes(
        self, session: AsyncSession, records: Sequence[schemas.RefundOutcomeRecord]
    ) -> schemas.RefundOutcomeResults:
        """:meth:`record_refunds`, answered per record."""
        refusals = await self.record_refunds(session, records)
        return schemas.RefundOutcomeResults(
            results=[
                schemas.RefundOutcomeResult(
                    refund_id=record.refund_id,
                    pledge_id=record.pledge_id,
                    result="recorded" if refusal is None else "refused",
                    code=None if refusal is None else refusal.instance_code,
                    detail=None if refusal is None else refusal.detail,
                )
                for record, refusal in zip(records, refusals, strict=True)
            ]
        )

    async def record_refunds(
        self, session: AsyncSession, records: Sequence[schemas.RefundOutcomeRecord]
    ) -> list[ProblemError | None]:
        """Upsert refund outcomes into their pledges' histories and recompute what each pledge had refunded, in
        the caller's transaction, with the same statements whatever the number of records: the pledges (locked)
        and their refunds are loaded in two queries, rows are written in batches on flush.

        Each record is applied in order, as if sent on its own: the answer per record is None (recorded) or the
        refusal the single route would raise, and a refused record changes nothing. Per ``refund_id``: a replay
        changes nothing, and a status never goes back (``pending`` < ``succeeded`` < ``failed`` / ``canceled``;
        among equals the later record wins). Each pledge whose refunds changed has its totals refreshed once
        (``refresh_refund_totals``: ``refunded_amount``, status, ``pledge.refunded`` if it changed)."""
        repository = RefundOutcomeRepository(session)
        pledges = await repository.lock_pledges({r.pledge_id for r in records})
        refunds = await repository.refunds(pledges.keys(), {r.refund_id for r in records})
        held: dict[uuid.UUID, int] = {}  # pending + succeeded, per pledge
        for row in refunds.values():
            if row.status in HELD:
                held[row.pledge_id] = held.get(row.pledge_id, 0) + row.amount
        now = utcnow()
        changed: dict[uuid.UUID, Pledge] = {}
        refusals: list[ProblemError | None] = []
        for record in records:
            pledge = pledges.get(record.pledge_id)
            refusal = _refusal(record, pledge, refunds.get(record.refund_id), held)
            refusals.append(refusal)
            if refusal is not None or pledge is None:
                continue
            existing = refunds.get(record.refund_id)
            if existing is None:
                refunds[record.refund_id] = _new_refund(record, now)
                session.add(refunds[record.refund_id])
                was_held = 0
            else:
                was_held = existing.amount if existing.status in HELD else 0
                if not _update(existing, record, now):
                    continue
            now_held = record.amount if record.status in HELD else 0
            held[pledge.id] = held.get(pledge.id, 0) - was_held + now_held
            changed[pledge.id] = pledge
        if changed:
            await session.flush()  # the refund rows, before the totals are summed from them
            # The totals' sums read only refund rows (flushed above): the pledges' updates and outbox rows wait
            # for the one flush below instead of one flush per pledge.
            with session.no_autoflush:
                for pledge in changed.values():
                    await refresh_refund_totals(session, pledge)
                    pledge.updated_at = now
            await session.flush()
        refused = sum(r is not None for r in refusals)
        log.info("pledge.refunds_recorded", records=len(records), pledges=len(changed), refused=refused)
        for record, refusal in zip(records, refusals, strict=True):
            if refusal is not None:
                log.warning(
                    "pledge.refund_refused",
                    pledge_id=str(record.pledge_id),
                    refund_id=str(record.refund_id),
                    code=refusal.instance_code,
                )
        return refusals

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


def _refusal(
    record: schemas.RefundOutcomeRecord,
    pledge: Pledge | None,
    existing: PledgeRefund | None,
    held: dict[uuid.UUID, int],
) -> ProblemError | None:
    if pledge is None:
        return exceptions.PledgeNotFound()
    if record.currency != pledge.currency:
        return exceptions.CurrencyMismatch()
    if existing is not None and existing.pledge_id != pledge.id:
        return exceptions.RefundIdReused()
    if existing is not None and RANK[record.status] < RANK[existing.status]:
        return None  # older news (a late retry): recorded, changes nothing
    others = held.get(pledge.id, 0) - (existing.amount if existing is not None and existing.status in HELD else 0)
    if record.status in HELD and others + record.amount > pledge.charged_amount:
        return exceptions.RefundExceedsCharged()
    return None


def _new_refund(record: schemas.RefundOutcomeRecord, now: datetime) -> PledgeRefund:
    return PledgeRefund(
        id=record.refund_id,
        pledge_id=record.pledge_id,
        stripe_refund_id=record.stripe_refund_id,
        amount=record.amount,
        currency=record.currency,
        status=record.status,
        failure_reason=record.failure_reason,
        batch_id=record.batch_id,
        source="refunds",
        stripe_event_at=None,
        created_at=now,
        updated_at=now,
    )


def _update(refund: PledgeRefund, record: schemas.RefundOutcomeRecord, now: datetime) -> bool:
    """Apply a record to its existing row unless it is older news; True if anything changed."""
    if RANK[record.status] < RANK[refund.status]:
        return False
    values = {
        "stripe_refund_id": record.stripe_refund_id or refund.stripe_refund_id,
        "amount": record.amount,
        "status": record.status,
        "failure_reason": record.failure_reason,
        "batch_id": record.batch_id or refund.batch_id,
    }
    if all(getattr(refund, name) == value for name, value in values.items()):
        return False
    for name, value in values.items():
        setattr(refund, name, value)
    refund.updated_at = now
    return True
