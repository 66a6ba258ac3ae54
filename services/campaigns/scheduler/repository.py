from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.models import Campaign, CampaignStatus, Reservation, ReservationStatus


class SchedulerRepository:
    """Cheap read-only probes, so that an idle poll never takes a write lock."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def due_campaign_ids(self, now: datetime, limit: int) -> Sequence[uuid.UUID]:
        statement = (
            select(Campaign.id)
            .where(Campaign.status == CampaignStatus.LIVE, Campaign.deadline_at <= now)
            .order_by(Campaign.deadline_at)
            .limit(limit)
        )
        return (await self.session.execute(statement)).scalars().all()

    async def any_overdue_reservation(self, now: datetime) -> bool:
        statement = select(
            exists().where(Reservation.status == ReservationStatus.PENDING, Reservation.expires_at <= now)
        )
        return bool((await self.session.execute(statement)).scalar())
