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
        """Apply one ``pledge.refunded``; returns what it added to the campaign's total.

        The pledges service announces a pledge's cumulative refunded total each time it grows, so the largest
        total received is the latest: an event that repeats or trails one already applied adds nothing, and
        the campaign's total is the sum of its pledges' largest totals, in whatever order they arrive."""
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
        added = event.refunded_amount - pledge.refunded_amount
        if added <= 0:
            log.info("campaign.refund_total.unchanged", pledge_id=str(event.pledge_id))
            return 0
        await repository.raise_pledge_total(event.pledge_id, event.refunded_amount)
        await repository.add_to_campaign_total(event.campaign_id, currency, added)
        log.info("campaign.refund_total.raised", campaign_id=str(event.campaign_id), pledge_id=str(event.pledge_id))
        return added

    async def visible_totals(
        self, session: AsyncSession, viewer: Viewer, campaigns: Iterable[Campaign]
    ) -> dict[uuid.UUID, int]:
        return await RefundTotalRepository(session).visible_campaign_totals(viewer, campaigns)


refund_total_service = RefundTotalService()
