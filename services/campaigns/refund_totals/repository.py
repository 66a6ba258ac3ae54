"""The refunded totals: one row per pledge (the latest cumulative total announced) and their sum per campaign.

Lock order: the pledge's row, then the campaign's total row; only the ``pledge.refunded`` handler locks them.
The campaign row itself gets only the foreign keys' ``KEY SHARE`` lock on PostgreSQL, which a reservation's
``FOR NO KEY UPDATE`` does not wait for: a refund never holds up a pledge.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select, update

from services.campaigns.access import Viewer
from services.campaigns.models import Campaign, CampaignRefundTotal, PledgeRefundTotal
from shared.db import insert_for, utcnow
from shared.repository import RepositoryBase


class RefundTotalRepository(RepositoryBase[PledgeRefundTotal]):
    model = PledgeRefundTotal

    async def pledge_total_locked(
        self, pledge_id: uuid.UUID, campaign_id: uuid.UUID, currency: str
    ) -> PledgeRefundTotal:
        """The pledge's row (created at 0 the first time), locked for the rest of the transaction on PostgreSQL
        (a SQLite write transaction is already exclusive): two events of one pledge apply one after the other."""
        insert = insert_for(self.session)
        await self.session.execute(
            insert(PledgeRefundTotal)
            .values(
                pledge_id=pledge_id, campaign_id=campaign_id, currency=currency, refunded_amount=0, updated_at=utcnow()
            )
            .on_conflict_do_nothing(index_elements=["pledge_id"])
        )
        statement = (
            select(PledgeRefundTotal)
            .where(PledgeRefundTotal.pledge_id == pledge_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(statement)).scalar_one()

    async def set_pledge_total(self, pledge_id: uuid.UUID, refunded_amount: int, revision: int) -> None:
        await self.session.execute(
            update(PledgeRefundTotal)
            .where(PledgeRefundTotal.pledge_id == pledge_id)
            .values(refunded_amount=refunded_amount, revision=revision, updated_at=utcnow())
        )

    async def add_to_campaign_total(self, campaign_id: uuid.UUID, currency: str, amount: int) -> None:
        """One atomic upsert: concurrent events of different pledges of one campaign add up, none is lost.
        ``amount`` is negative for a refund that failed after succeeding: a plain update then, since the row
        exists (the refund raised it) and the insert half of an upsert would be checked against ``>= 0``."""
        if amount < 0:
            await self.session.execute(
                update(CampaignRefundTotal)
                .where(CampaignRefundTotal.campaign_id == campaign_id)
                .values(refunded_amount=CampaignRefundTotal.refunded_amount + amount, updated_at=utcnow())
            )
            return
        insert = insert_for(self.session)
        statement = insert(CampaignRefundTotal).values(
            campaign_id=campaign_id, currency=currency, refunded_amount=amount, updated_at=utcnow()
        )
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=["campaign_id"],
                set_={
                    "refunded_amount": CampaignRefundTotal.refunded_amount + statement.excluded.refunded_amount,
                    "updated_at": statement.excluded.updated_at,
                },
            )
        )

    async def visible_campaign_totals(self, viewer: Viewer, campaigns: Iterable[Campaign]) -> dict[uuid.UUID, int]:
        """Refunded totals of the campaigns whose exact figures ``viewer`` sees (creator, operators, services);
        a campaign without refunds is absent. For any other viewer nothing is read at all."""
        campaign_ids = [campaign.id for campaign in campaigns if viewer.sees_everything(campaign)]
        if not campaign_ids:
            return {}
        statement = select(CampaignRefundTotal.campaign_id, CampaignRefundTotal.refunded_amount).where(
            CampaignRefundTotal.campaign_id.in_(campaign_ids)
        )
        return {campaign_id: int(amount) for campaign_id, amount in (await self.session.execute(statement)).all()}
