from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import and_, select

from services.campaigns.models import Tier, TierVersion
from shared.repository import RepositoryBase


class TierRepository(RepositoryBase[Tier]):
    model = Tier

    async def get_in_campaign(self, campaign_id: uuid.UUID, tier_id: uuid.UUID) -> Tier | None:
        return await self.get_one_or_none(select(Tier).where(Tier.id == tier_id, Tier.campaign_id == campaign_id))

    async def get_locked(self, campaign_id: uuid.UUID, tier_id: uuid.UUID) -> Tier | None:
        statement = (
            select(Tier)
            .where(Tier.id == tier_id, Tier.campaign_id == campaign_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return await self.get_one_or_none(statement)

    async def list_for_campaigns(self, campaign_ids: Sequence[uuid.UUID]) -> Sequence[Tier]:
        statement = select(Tier).where(Tier.campaign_id.in_(campaign_ids)).order_by(Tier.position, Tier.created_at)
        return await self.get_all(statement)

    async def count_for_campaign(self, campaign_id: uuid.UUID) -> int:
        return await self.count(select(Tier.id).where(Tier.campaign_id == campaign_id))

    async def delete(self, tier: Tier) -> None:
        await self.session.delete(tier)
        await self.session.flush()


class TierVersionRepository(RepositoryBase[TierVersion]):
    model = TierVersion

    async def get_version(self, tier_id: uuid.UUID, version: int) -> TierVersion | None:
        statement = select(TierVersion).where(TierVersion.tier_id == tier_id, TierVersion.version == version)
        return await self.get_one_or_none(statement)

    async def current_versions(self, tiers: Sequence[Tier]) -> dict[uuid.UUID, TierVersion]:
        if not tiers:
            return {}
        statement = (
            select(TierVersion)
            .join(Tier, and_(Tier.id == TierVersion.tier_id, Tier.current_version == TierVersion.version))
            .where(Tier.id.in_([tier.id for tier in tiers]))
        )
        return {row.tier_id: row for row in await self.get_all(statement)}

    async def list_for_tier(self, tier_id: uuid.UUID) -> Sequence[TierVersion]:
        statement = select(TierVersion).where(TierVersion.tier_id == tier_id).order_by(TierVersion.version)
        return await self.get_all(statement)
