from __future__ import annotations

import uuid
from collections.abc import Iterable

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.campaigns.exceptions import CampaignNotFound
from services.campaigns.models import Campaign
from services.campaigns.refund_totals.repository import RefundTotalRepository
from services.campaigns.refund_totals.schemas import PledgeRefunded
from shared.errors import UnprocessableContent

log = structlog.get_logger("campaigns.refund_totals")


class RefundTotalService:
    async def record(self, session: AsyncSession, event: PledgeRefunded) -> int:
        """Apply one ``pledge.refunded``; returns what it changed the campaign's total by (negative when a
        refund failed after succeeding).

        The pledges service announces a pledge's cumulative refunded total each time it changes, with the
        pledge's ``revision`` of it: the highest revision is the latest total, so an event that repeats or
        trails one already applied changes nothing, and the campaign's total is the sum of its pledges' latest
        totals, in whatever order they arrive. An event without a revision (published before revisions) is
        the old contract, where totals only grew: it applies only while no revisioned event has, if larger."""
        currency = (
            await session.execute(select(Campaign.currency).where(Campaign.id == event.campaign_id))
        ).scalar_one_or_none()
        if currency is None:
            raise CampaignNotFound(event.campaign_id)
        if currency != event.currency:
            raise UnprocessableContent(
                f"The pledge's currency {event.currency} is not the campaign's.", code="currency_mismatch"
            )
        repository = RefundTotalRepository(session)
        pledge = await repository.pledge_total_locked(event.pledge_id, event.campaign_id, currency)
        if pledge.campaign_id != event.campaign_id:
            raise UnprocessableContent("The pledge belongs to another campaign.", code="campaign_mismatch")
        if event.revision is None:
            newer = pledge.revision == 0 and event.refunded_amount > pledge.refunded_amount
        else:
            newer = event.revision > pledge.revision
        change = event.refunded_amount - pledge.refunded_amount
        if not newer:
            log.info("campaign.refund_total.unchanged", pledge_id=str(event.pledge_id))
            return 0
        await repository.set_pledge_total(event.pledge_id, event.refunded_amount, event.revision or 0)
        if change:
            await repository.add_to_campaign_total(event.campaign_id, currency, change)
        log.info(
            "campaign.refund_total.changed",
            campaign_id=str(event.campaign_id),
            pledge_id=str(event.pledge_id),
            revision=event.revision,
        )
        return change

    async def visible_totals(
        self, session: AsyncSession, viewer: Viewer, campaigns: Iterable[Campaign]
    ) -> dict[uuid.UUID, int]:
        return await RefundTotalRepository(session).visible_campaign_totals(viewer, campaigns)


refund_total_service = RefundTotalService()
