"""SQL of the internal routes that work on many pledges at once: a fixed number of statements per call,
whatever the number of records (``IN (...)`` lists, never one query per record)."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import or_, select

from services.pledges.models import Pledge, PledgeRefund
from shared.repository import RepositoryBase


class RefundOutcomeRepository(RepositoryBase[PledgeRefund]):
    model = PledgeRefund

    async def lock_pledges(self, pledge_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, Pledge]:
        """The pledges that exist among ``pledge_ids``, locked on PostgreSQL in id order (two calls sharing
        pledges lock them in the same order, so they queue instead of deadlocking)."""
        statement = (
            select(Pledge)
            .where(Pledge.id.in_(sorted(pledge_ids)))
            .order_by(Pledge.id)
            .execution_options(populate_existing=True)
        )
        if self.session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update()
        return {pledge.id: pledge for pledge in (await self.session.execute(statement)).scalars()}

    async def refunds(
        self, pledge_ids: Collection[uuid.UUID], refund_ids: Collection[uuid.UUID]
    ) -> dict[uuid.UUID, PledgeRefund]:
        """Every refund of these pledges (what they already hold) and any row already using one of
        ``refund_ids`` (a refund id reused for another pledge), by id."""
        statement = (
            select(PledgeRefund)
            .where(or_(PledgeRefund.pledge_id.in_(list(pledge_ids)), PledgeRefund.id.in_(list(refund_ids))))
            .execution_options(populate_existing=True)
        )
        return {refund.id: refund for refund in (await self.session.execute(statement)).scalars()}
