"""A single refund is a batch of one: the same preview rules, approval threshold, workers and report."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.refunds.batches.exceptions import CampaignsUnavailable, PledgesUnavailable
from services.refunds.batches.planning import ExclusionReason, PlannedExclusion, plan
from services.refunds.batches.repository import RefundBatchRepository
from services.refunds.batches.schemas import RefundBatchCreate, RefundFixed, RefundFull, SelectPledges
from services.refunds.batches.service import refund_batch_service
from services.refunds.clients import CampaignsClient, PledgeForRefund, PledgeRefused, PledgesClient
from services.refunds.config import Settings
from services.refunds.models import BatchKind, BatchStatus, RefundBatch, RefundItem
from services.refunds.single import schemas
from shared.auth import Principal
from shared.errors import Conflict, Forbidden, NotFound, UnprocessableContent
from shared.http import UpstreamUnavailable


class PledgeNotFound(NotFound):
    code = "pledge_not_found"


class SingleRefundNotFound(NotFound):
    code = "refund_not_found"


class NotCampaignCreator(Forbidden):
    code = "not_campaign_creator"


class AmountExceedsRefundable(UnprocessableContent):
    code = "amount_exceeds_refundable"


class NotRefundable(Conflict):
    code = "not_refundable"


class SingleRefundService:
    async def prepare(
        self,
        principal: Principal,
        data: schemas.SingleRefundCreate,
        pledges: PledgesClient,
        campaigns: CampaignsClient,
    ) -> tuple[PledgeForRefund, RefundBatchCreate]:
        """Read the pledge (and, for a creator, whose campaign it is). No database work happens meanwhile."""
        try:
            pledge = await pledges.get_pledge(data.pledge_id)
        except (UpstreamUnavailable, PledgeRefused) as exc:
            raise PledgesUnavailable() from exc
        if pledge is None:
            raise PledgeNotFound(f"No pledge {data.pledge_id}.")
        if not principal.is_operator:
            try:
                creator = await campaigns.creator_of(pledge.campaign_id)
            except (UpstreamUnavailable, PledgeRefused) as exc:
                raise CampaignsUnavailable() from exc
            if creator != principal.subject:
                raise NotCampaignCreator("Only the campaign's creator or an operator may refund this pledge.")
        if data.amount is not None and data.amount > max(0, pledge.refundable_amount):
            raise AmountExceedsRefundable(
                f"At most {max(0, pledge.refundable_amount)} is refundable on this pledge.",
                extra={"refundable_amount": max(0, pledge.refundable_amount)},
            )
        rule = (
            RefundFull() if data.amount is None else RefundFixed(amount=data.amount, currency=pledge.currency.upper())  # type: ignore[arg-type]
        )
        request = RefundBatchCreate(
            campaign_id=pledge.campaign_id,
            reason=data.reason,
            selection=SelectPledges(pledge_ids=[pledge.pledge_id]),
            amount_rule=rule,
            stripe_reason=data.stripe_reason,
        )
        return pledge, request

    async def create(
        self,
        session: AsyncSession,
        principal: Principal,
        pledge: PledgeForRefund,
        request: RefundBatchCreate,
        settings: Settings,
    ) -> schemas.SingleRefund:
        busy = await RefundBatchRepository(session).pledges_in_open_batches(pledge.campaign_id)
        outcome = plan(pledge, request.amount_rule, pledge.campaign_id, in_other_batch=pledge.pledge_id in busy)
        if isinstance(outcome, PlannedExclusion):
            code = "refund_in_progress" if outcome.reason == ExclusionReason.IN_OTHER_BATCH else outcome.reason
            raise NotRefundable(outcome.detail, code=code)
        batch = await refund_batch_service.create(
            session, principal, request, [pledge], [], settings, kind=BatchKind.SINGLE, auto_start=True
        )
        await session.flush()
        return await self.get(session, principal, None, batch=batch)

    async def get(
        self,
        session: AsyncSession,
        principal: Principal,
        refund_id: uuid.UUID | None,
        *,
        batch: RefundBatch | None = None,
    ) -> schemas.SingleRefund:
        statement = select(RefundItem, RefundBatch).join(RefundBatch, RefundBatch.id == RefundItem.batch_id)
        if batch is not None:
            statement = statement.where(RefundItem.batch_id == batch.id)
        else:
            statement = statement.where(RefundItem.id == refund_id)
        if not principal.is_operator:
            statement = statement.where(RefundBatch.created_by == principal.subject)
        row = (await session.execute(statement)).first()
        if row is None:
            raise SingleRefundNotFound(f"No refund {refund_id} is visible to you.")
        item, owner = row
        return schemas.SingleRefund(
            id=item.id,
            batch_id=owner.id,
            batch_status=owner.status,
            requires_approval=owner.status is BatchStatus.PREVIEW,
            pledge_id=item.pledge_id,
            campaign_id=item.campaign_id,
            action=item.action,
            currency=item.currency,
            amount=item.amount,
            status=item.status,
            stripe_refund_id=item.stripe_refund_id,
            failure_code=item.failure_code,
            failure_reason=item.failure_reason,
            follow_up_required=item.follow_up_required,
            created_at=item.created_at,
            finished_at=item.finished_at,
        )


single_refund_service = SingleRefundService()
