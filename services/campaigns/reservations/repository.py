"""The SQL that keeps caps: every change of a running total is one conditional UPDATE, so the check and the
increment are a single atomic statement on SQLite and PostgreSQL alike. Under PostgreSQL's READ COMMITTED a
concurrent UPDATE of the same row waits for the first to commit and then re-evaluates its WHERE clause on
the new row, so two pledges can never both take the last unit of capacity; SQLite write transactions are
serialized by ``BEGIN IMMEDIATE``.

Rows are always touched in the same order — reservation, campaign, tier, backer count — so that concurrent
transactions cannot deadlock.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, func, or_, select, update

from services.campaigns.models import (
    BackerTierCount,
    Campaign,
    CampaignStatus,
    Reservation,
    ReservationStatus,
    Tier,
)
from shared.db import insert_for
from shared.repository import RepositoryBase


class ReservationRepository(RepositoryBase[Reservation]):
    model = Reservation

    async def insert_pending(self, values: dict[str, Any]) -> bool:
        """Insert unless the pledge id exists (the unique key decides, not a prior SELECT)."""
        insert = insert_for(self.session)
        statement = insert(Reservation).values(**values).on_conflict_do_nothing(index_elements=["id"])
        result = await self.session.execute(statement)
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def get_fresh(self, pledge_id: uuid.UUID, *, lock: bool = False) -> Reservation | None:
        statement = select(Reservation).where(Reservation.id == pledge_id).execution_options(populate_existing=True)
        if lock:
            statement = statement.with_for_update()
        return await self.get_one_or_none(statement)

    async def set_status(
        self,
        pledge_id: uuid.UUID,
        *,
        expected: ReservationStatus,
        status: ReservationStatus,
        values: dict[str, Any],
        expires_before: datetime | None = None,
    ) -> bool:
        """Compare-and-set on the status: true only for the one transaction that made the change."""
        conditions = [Reservation.id == pledge_id, Reservation.status == expected]
        if expires_before is not None:
            conditions.append(Reservation.expires_at <= expires_before)
        statement = update(Reservation).where(*conditions).values(status=status, **values)
        result = await self.session.execute(statement.execution_options(synchronize_session=False))
        return result.rowcount == 1  # type: ignore[attr-defined,no-any-return]

    async def expired_pending(self, now: datetime, limit: int) -> Sequence[Reservation]:
        statement = (
            select(Reservation)
            .where(Reservation.status == ReservationStatus.PENDING, Reservation.expires_at <= now)
            .order_by(Reservation.expires_at)
            .limit(limit)
        )
        return await self.get_all(statement)

    async def count_pending(self, campaign_id: uuid.UUID) -> int:
        return await self.count(
            select(Reservation.id).where(
                Reservation.campaign_id == campaign_id, Reservation.status == ReservationStatus.PENDING
            )
        )

    async def list_for_campaign(
        self,
        campaign_id: uuid.UUID,
        *,
        statuses: Sequence[ReservationStatus] | None,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Sequence[Reservation]:
        statement = select(Reservation).where(Reservation.campaign_id == campaign_id)
        if statuses:
            statement = statement.where(Reservation.status.in_(statuses))
        if after is not None:
            at, last_id = after
            statement = statement.where(
                or_(Reservation.created_at > at, and_(Reservation.created_at == at, Reservation.id > last_id))
            )
        statement = statement.order_by(Reservation.created_at, Reservation.id).limit(limit)
        return await self.get_all(statement)

    async def sums(self, campaign_id: uuid.UUID) -> dict[ReservationStatus, tuple[int, int]]:
        """(count, amount) per status, recomputed from the reservations themselves."""
        statement: Select[Any] = (
            select(Reservation.status, func.count(), func.coalesce(func.sum(Reservation.amount), 0))
            .where(Reservation.campaign_id == campaign_id)
            .group_by(Reservation.status)
        )
        rows = (await self.session.execute(statement)).all()
        return {ReservationStatus(status): (int(count), int(amount)) for status, count, amount in rows}


class CapacityRepository:
    """Conditional updates of the running totals on campaigns, tiers and backer counts."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def _execute(self, statement: Any) -> bool:
        result = await self.session.execute(statement.execution_options(synchronize_session=False))
        return bool(result.rowcount == 1)

    async def hold_campaign_amount(self, campaign_id: uuid.UUID, amount: int, now: datetime) -> bool:
        """reserved += amount, only if live, before the deadline and within the cap (pending counts)."""
        within_cap = or_(
            Campaign.cap_amount.is_(None),
            Campaign.reserved_amount + Campaign.committed_amount + amount <= Campaign.cap_amount,
        )
        statement = (
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.LIVE,
                Campaign.deadline_at > now,
                within_cap,
            )
            .values(reserved_amount=Campaign.reserved_amount + amount)
        )
        return await self._execute(statement)

    async def commit_campaign_amount(self, campaign_id: uuid.UUID, amount: int) -> bool:
        """Move a pending amount to committed, only while the campaign is live."""
        statement = (
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.LIVE)
            .values(
                reserved_amount=Campaign.reserved_amount - amount,
                committed_amount=Campaign.committed_amount + amount,
                backer_count=Campaign.backer_count + 1,
            )
        )
        return await self._execute(statement)

    async def drop_campaign_amount(self, campaign_id: uuid.UUID, amount: int, *, was_confirmed: bool) -> None:
        values: dict[str, Any]
        if was_confirmed:
            values = {
                "committed_amount": Campaign.committed_amount - amount,
                "backer_count": Campaign.backer_count - 1,
            }
        else:
            values = {"reserved_amount": Campaign.reserved_amount - amount}
        await self._execute(update(Campaign).where(Campaign.id == campaign_id).values(**values))

    async def hold_tier_unit(self, tier_id: uuid.UUID, version: int) -> bool:
        """reserved_quantity += 1, only if the terms are still ``version`` and a unit is left."""
        within_limit = or_(
            Tier.quantity_limit.is_(None),
            Tier.reserved_quantity + Tier.committed_quantity + 1 <= Tier.quantity_limit,
        )
        statement = (
            update(Tier)
            .where(Tier.id == tier_id, Tier.current_version == version, within_limit)
            .values(reserved_quantity=Tier.reserved_quantity + 1)
        )
        return await self._execute(statement)

    async def commit_tier_unit(self, tier_id: uuid.UUID) -> None:
        statement = (
            update(Tier)
            .where(Tier.id == tier_id)
            .values(reserved_quantity=Tier.reserved_quantity - 1, committed_quantity=Tier.committed_quantity + 1)
        )
        await self._execute(statement)

    async def drop_tier_unit(self, tier_id: uuid.UUID, *, was_confirmed: bool) -> None:
        values = (
            {"committed_quantity": Tier.committed_quantity - 1}
            if was_confirmed
            else {"reserved_quantity": Tier.reserved_quantity - 1}
        )
        await self._execute(update(Tier).where(Tier.id == tier_id).values(**values))

    async def current_tier_version(self, tier_id: uuid.UUID) -> int | None:
        return (await self.session.execute(select(Tier.current_version).where(Tier.id == tier_id))).scalar()

    async def campaign_accepts(self, campaign_id: uuid.UUID, now: datetime) -> bool:
        statement = select(Campaign.id).where(
            Campaign.id == campaign_id, Campaign.status == CampaignStatus.LIVE, Campaign.deadline_at > now
        )
        return (await self.session.execute(statement)).first() is not None

    async def hold_backer_unit(self, tier_id: uuid.UUID, backer_id: str, limit: int | None) -> bool:
        """active_count += 1 for (tier, backer), only within the per-backer limit (an upsert with a WHERE)."""
        insert = insert_for(self.session)
        statement = insert(BackerTierCount).values(tier_id=tier_id, backer_id=backer_id, active_count=1)
        condition = None if limit is None else BackerTierCount.active_count + 1 <= limit
        statement = statement.on_conflict_do_update(
            index_elements=["tier_id", "backer_id"],
            set_={"active_count": BackerTierCount.active_count + 1},
            where=condition,
        )
        return await self._execute(statement)

    async def drop_backer_unit(self, tier_id: uuid.UUID, backer_id: str) -> None:
        statement = (
            update(BackerTierCount)
            .where(and_(BackerTierCount.tier_id == tier_id, BackerTierCount.backer_id == backer_id))
            .values(active_count=BackerTierCount.active_count - 1)
        )
        await self._execute(statement)
