"""Durable deadline close and reservation expiry.

The work lives in the database, not in memory: a campaign is due when it is ``live`` and its deadline has
passed. Any replica may pick it up; the campaign row is locked (PostgreSQL ``FOR UPDATE``; SQLite write
transactions are exclusive) and its status re-checked inside the transaction, so exactly one replica closes
it, and the status change, the audit entry and the ``campaign.closed`` event commit together.

A campaign with pending reservations past its deadline waits until they are confirmed, released or expired,
so that the committed total it closes with is final.

This module holds the steps; ``worker.py`` owns their transactions.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.campaigns.repository import CampaignRepository
from services.campaigns.config import Settings
from services.campaigns.lifecycle import CampaignAction
from services.campaigns.models import ActorRole, CampaignStatus, FundingModel, OutboxEvent
from services.campaigns.reservations.repository import ReservationRepository
from services.campaigns.scheduler.repository import SchedulerRepository
from services.campaigns.vetting.service import CAMPAIGN_CLOSED, closed_event_payload, vetting_service
from shared.db import utcnow
from shared.outbox import publish

log = structlog.get_logger("campaigns.scheduler")

SCHEDULER_ACTOR = "campaigns-scheduler"


class SchedulerService:
    async def close_campaign(self, session: AsyncSession, campaign_id: uuid.UUID) -> CampaignStatus | None:
        """Close one due campaign; None if it is not (or no longer) due, or still has pending reservations."""
        campaign = await CampaignRepository(session).get_locked(campaign_id)
        now = utcnow()
        if (
            campaign is None
            or campaign.status is not CampaignStatus.LIVE
            or campaign.deadline_at is None
            or campaign.deadline_at > now
        ):
            return None
        if await ReservationRepository(session).count_pending(campaign.id):
            return None
        goal_reached = campaign.committed_amount >= campaign.goal_amount
        # A flexible campaign has charged as it went: it ends successfully whatever the total.
        succeeded = goal_reached or campaign.funding_model is FundingModel.FLEXIBLE
        action = CampaignAction.CLOSE_SUCCEEDED if succeeded else CampaignAction.CLOSE_FAILED
        change = await vetting_service.transition(
            session, campaign, action, actor_id=SCHEDULER_ACTOR, actor_role=ActorRole.SYSTEM, reason="deadline"
        )
        campaign.closed_at = change.changed_at
        await session.flush()
        await publish(session, OutboxEvent, CAMPAIGN_CLOSED, closed_event_payload(campaign))
        log.info("campaign.closed", campaign_id=str(campaign.id), outcome=change.status.value)
        return change.status

    async def due_work(self, session: AsyncSession, settings: Settings) -> tuple[bool, Sequence[uuid.UUID]]:
        """One cheap read-only probe: whether any reservation is overdue, and the campaigns due to close."""
        now = utcnow()
        probe = SchedulerRepository(session)
        overdue = await probe.any_overdue_reservation(now)
        due = await probe.due_campaign_ids(now, settings.scheduler_batch_size)
        return overdue, due


scheduler_service = SchedulerService()
