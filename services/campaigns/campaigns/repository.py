from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, true

from services.campaigns.access import Viewer
from services.campaigns.campaigns.schemas import CampaignSort
from services.campaigns.models import Campaign, CampaignStatus
from shared.auth import Role
from shared.repository import RepositoryBase


def visible_to(viewer: Viewer) -> ColumnElement[bool]:
    """Who may read which campaign: the public sees launched campaigns only; a creator also sees their own;
    operators and services see all."""
    if viewer.is_operator or viewer.is_service:
        return true()
    launched = Campaign.launched_at.is_not(None)
    principal = viewer.principal
    if principal is not None and principal.has(Role.CREATOR):
        return or_(launched, Campaign.creator_id == principal.subject)
    return launched


class CampaignRepository(RepositoryBase[Campaign]):
    model = Campaign

    async def get_visible(self, campaign_id: uuid.UUID, viewer: Viewer) -> Campaign | None:
        statement = select(Campaign).where(Campaign.id == campaign_id, visible_to(viewer))
        return await self.get_one_or_none(statement)

    async def get_locked(self, campaign_id: uuid.UUID) -> Campaign | None:
        """The campaign row locked for the rest of the transaction (PostgreSQL; SQLite write transactions are
        already exclusive), with fresh values even if the session had it loaded."""
        statement = (
            select(Campaign)
            .where(Campaign.id == campaign_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return await self.get_one_or_none(statement)

    async def list_visible(
        self,
        viewer: Viewer,
        *,
        statuses: Sequence[CampaignStatus] | None,
        creator_id: str | None,
        sort: CampaignSort,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[Campaign]:
        statement: Select[Any] = select(Campaign).where(visible_to(viewer))
        if statuses:
            statement = statement.where(Campaign.status.in_(statuses))
        if creator_id is not None:
            statement = statement.where(Campaign.creator_id == creator_id)
        if sort is CampaignSort.NEWEST:
            if after is not None:
                at, last_id = after
                statement = statement.where(
                    or_(Campaign.created_at < at, and_(Campaign.created_at == at, Campaign.id < last_id))
                )
            statement = statement.order_by(Campaign.created_at.desc(), Campaign.id.desc())
        else:
            statement = statement.where(Campaign.deadline_at.is_not(None))
            if after is not None:
                at, last_id = after
                statement = statement.where(
                    or_(Campaign.deadline_at > at, and_(Campaign.deadline_at == at, Campaign.id > last_id))
                )
            statement = statement.order_by(Campaign.deadline_at.asc(), Campaign.id.asc())
        return await self.get_all(statement.limit(limit))

    async def review_queue(self, *, limit: int) -> Sequence[Campaign]:
        statement = (
            select(Campaign)
            .where(Campaign.status.in_([CampaignStatus.SUBMITTED, CampaignStatus.IN_REVIEW]))
            .order_by(Campaign.submitted_at.asc(), Campaign.id.asc())
            .limit(limit)
        )
        return await self.get_all(statement)
