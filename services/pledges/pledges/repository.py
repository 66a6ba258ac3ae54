"""All SQL about pledges. State changes are compare-and-set updates (on the status and the driver's lease
token), so two drivers — a request and the sweeper, or two replicas — can never both apply a step."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import UpdateBase

from services.pledges.models import (
    CampaignClosure,
    FundingModel,
    OutboxEvent,
    Pledge,
    PledgePayment,
    PledgeRefund,
    PledgeStatus,
    PledgeTerms,
    RefundStatus,
    ReservationState,
)
from shared.db import insert_for, table_of
from shared.outbox import publish
from shared.repository import RepositoryBase


def lease_free(now: datetime) -> Any:
    return or_(Pledge.lease_until.is_(None), Pledge.lease_until < now)


# The saga's hot path (a few statements per pledge step) runs as Core statements on a plain connection:
# the ORM's unit of work and session bookkeeping cost more CPU than the statements themselves.
PLEDGES = table_of(Pledge)
PLEDGE_TERMS = table_of(PledgeTerms)
PLEDGE_PAYMENTS = table_of(PledgePayment)


def _dialect_insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


# Statements are built once and executed with parameter dicts, so SQLAlchemy compiles each shape once and
# does not rebuild bind parameters and cache keys on every call.
_INSERT_PLEDGE = {
    d: _dialect_insert(d)(PLEDGES).on_conflict_do_nothing(index_elements=["backer_id", "idempotency_key"])
    for d in ("postgresql", "sqlite")
}
_INSERT_PAYMENT = {
    d: _dialect_insert(d)(PLEDGE_PAYMENTS).on_conflict_do_nothing(index_elements=["stripe_id"])
    for d in ("postgresql", "sqlite")
}
_INSERT_TERMS = PLEDGE_TERMS.insert()
_CAS = update(PLEDGES).where(
    PLEDGES.c.id == bindparam("cas_id"),
    PLEDGES.c.status == bindparam("cas_status"),
    PLEDGES.c.lease_token == bindparam("cas_token"),
)
_CAS_UNLEASED = update(PLEDGES).where(
    PLEDGES.c.id == bindparam("cas_id"),
    PLEDGES.c.status == bindparam("cas_status"),
    PLEDGES.c.lease_token.is_(None),
)


# On PostgreSQL, a step that writes two rows does it in ONE statement (data-modifying CTEs), so the saga runs
# it in autocommit (``Database.one_statement``): one round trip instead of BEGIN, two statements and COMMIT.
# Built once per set of columns (lru_cache) and compiled once by SQLAlchemy's statement cache.


def _typed(table: Table, names: Iterable[str], prefix: str = "") -> list[Any]:
    return [bindparam(prefix + name, type_=table.c[name].type) for name in names]


@lru_cache(maxsize=32)
def _insert_pledge_with_terms(columns: tuple[str, ...], terms_columns: tuple[str, ...]) -> Any:
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    new_pledge = (
        pg_insert(PLEDGES)
        .values(dict(zip(columns, _typed(PLEDGES, columns), strict=True)))
        .on_conflict_do_nothing(index_elements=["backer_id", "idempotency_key"])
        .returning(PLEDGES.c.id)
        .cte("new_pledge")
    )
    snapshot = select(*_typed(PLEDGE_TERMS, terms_columns, "terms_"), new_pledge.c.id)
    return (
        PLEDGE_TERMS.insert().from_select([*terms_columns, "pledge_id"], snapshot).returning(PLEDGE_TERMS.c.pledge_id)
    )


@lru_cache(maxsize=128)
def _cas_recording_payment(columns: tuple[str, ...], payment_columns: tuple[str, ...], leased: bool) -> Any:
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    cas = (
        (_CAS if leased else _CAS_UNLEASED)
        .values(dict(zip(columns, _typed(PLEDGES, columns), strict=True)))
        .returning(PLEDGES.c.id)
        .cte("cas")
    )
    payment = (
        pg_insert(PLEDGE_PAYMENTS)
        .from_select(
            [*payment_columns, "pledge_id"], select(*_typed(PLEDGE_PAYMENTS, payment_columns, "payment_"), cas.c.id)
        )
        .on_conflict_do_nothing(index_elements=["stripe_id"])
        .cte("payment")
    )
    return select(func.count()).select_from(cas).add_cte(payment)


async def insert_pledge(conn: AsyncConnection, values: dict[str, Any], terms: dict[str, Any]) -> bool:
    """The pledge and its first terms snapshot, unless this backer already used the idempotency key.
    One statement on PostgreSQL; two in the caller's transaction on SQLite."""
    if conn.dialect.name == "postgresql":
        terms_columns = tuple(k for k in terms if k != "pledge_id")
        statement = _insert_pledge_with_terms(tuple(values), terms_columns)
        params = values | {f"terms_{k}": terms[k] for k in terms_columns}
        return (await conn.execute(statement, params)).first() is not None
    result = await conn.execute(_INSERT_PLEDGE[conn.dialect.name], values)
    if result.rowcount != 1:
        return False
    await conn.execute(_INSERT_TERMS, terms)
    return True


async def compare_and_set(
    conn: AsyncConnection,
    pledge_id: uuid.UUID,
    *,
    token: uuid.UUID | None,
    expected: PledgeStatus,
    values: dict[str, Any],
    payment: dict[str, Any] | None = None,
) -> bool:
    """Apply ``values`` only if the pledge is still ``expected`` and held by ``token``; with ``payment``, record
    that payment attempt too, in the same statement on PostgreSQL (a replayed step records nothing new)."""
    params = {**values, "cas_id": pledge_id, "cas_status": expected}
    if token is not None:
        params["cas_token"] = token
    if payment is not None and conn.dialect.name == "postgresql":
        payment_columns = tuple(k for k in payment if k != "pledge_id")
        statement = _cas_recording_payment(tuple(values), payment_columns, token is not None)
        params |= {f"payment_{k}": payment[k] for k in payment_columns}
        return bool((await conn.execute(statement, params)).scalar_one() == 1)
    result = await conn.execute(_CAS_UNLEASED if token is None else _CAS, params)
    if result.rowcount != 1:
        return False
    if payment is not None:
        await record_payment(conn, payment)
    return True


async def record_payment(conn: AsyncConnection, values: dict[str, Any]) -> None:
    """A payment attempt's outcome; a replayed step (same Stripe object) records nothing new."""
    await conn.execute(_INSERT_PAYMENT[conn.dialect.name], values)


class PledgeRepository(RepositoryBase[Pledge]):
    model = Pledge

    async def _updated(self, statement: UpdateBase) -> int:
        """How many rows the statement changed (without RETURNING it executes to a CursorResult; the
        overloads only say Result)."""
        return cast("CursorResult[Any]", await self.session.execute(statement)).rowcount

    async def by_key(self, backer_id: str, key: str) -> Pledge | None:
        return await self.get_one_or_none(
            select(Pledge)
            .where(Pledge.backer_id == backer_id, Pledge.idempotency_key == key)
            .execution_options(populate_existing=True)
        )

    async def fresh(self, pledge_id: uuid.UUID) -> Pledge | None:
        return await self.get_one_or_none(
            select(Pledge).where(Pledge.id == pledge_id).execution_options(populate_existing=True)
        )

    async def locked(self, pledge_id: uuid.UUID) -> Pledge | None:
        statement = select(Pledge).where(Pledge.id == pledge_id).execution_options(populate_existing=True)
        if self.session.get_bind().dialect.name == "postgresql":
            statement = statement.with_for_update()
        return await self.get_one_or_none(statement)

    async def compare_and_set(
        self, pledge_id: uuid.UUID, *, token: uuid.UUID | None, expected: PledgeStatus, values: dict[str, Any]
    ) -> bool:
        conditions = [Pledge.id == pledge_id, Pledge.status == expected]
        conditions.append(Pledge.lease_token.is_(None) if token is None else Pledge.lease_token == token)
        statement = update(Pledge).where(*conditions).values(**values).execution_options(synchronize_session=False)
        return await self._updated(statement) == 1

    async def claim(
        self,
        pledge_id: uuid.UUID,
        *,
        statuses: Iterable[PledgeStatus],
        token: uuid.UUID,
        now: datetime,
        lease: timedelta,
        values: dict[str, Any] | None = None,
    ) -> bool:
        """Take the pledge's lease if it is in one of ``statuses`` and nobody holds it."""
        statement = (
            update(Pledge)
            .where(Pledge.id == pledge_id, Pledge.status.in_(list(statuses)), lease_free(now))
            .values(lease_token=token, lease_until=now + lease, updated_at=now, **(values or {}))
            .execution_options(synchronize_session=False)
        )
        return await self._updated(statement) == 1

    async def add_terms(self, row: PledgeTerms) -> None:
        self.session.add(row)

    async def terms(self, pledge_id: uuid.UUID) -> Sequence[PledgeTerms]:
        statement = select(PledgeTerms).where(PledgeTerms.pledge_id == pledge_id).order_by(PledgeTerms.version)
        return (await self.session.execute(statement)).scalars().all()

    async def payments(self, pledge_id: uuid.UUID) -> Sequence[PledgePayment]:
        statement = select(PledgePayment).where(PledgePayment.pledge_id == pledge_id).order_by(PledgePayment.created_at)
        return (await self.session.execute(statement)).scalars().all()

    async def refunds(self, pledge_id: uuid.UUID) -> Sequence[PledgeRefund]:
        statement = select(PledgeRefund).where(PledgeRefund.pledge_id == pledge_id).order_by(PledgeRefund.created_at)
        return (await self.session.execute(statement)).scalars().all()

    # -- listings -----------------------------------------------------------------------------------------

    def page(
        self,
        base: Select[Any],
        *,
        after: tuple[datetime, uuid.UUID] | None,
        limit: int,
    ) -> Select[Any]:
        """Keyset pagination on (created_at, id); one row more than asked tells whether a next page exists."""
        if after is not None:
            created_at, pledge_id = after
            base = base.where(
                or_(Pledge.created_at > created_at, and_(Pledge.created_at == created_at, Pledge.id > pledge_id))
            )
        return base.order_by(Pledge.created_at, Pledge.id).limit(limit + 1)

    async def reconciliation(self, campaign_id: uuid.UUID) -> dict[ReservationState, tuple[int, int]]:
        statement = (
            select(Pledge.reservation_state, func.count(), func.coalesce(func.sum(Pledge.total_amount), 0))
            .where(Pledge.campaign_id == campaign_id)
            .group_by(Pledge.reservation_state)
        )
        rows = (await self.session.execute(statement)).all()
        return {ReservationState(state): (int(count), int(amount)) for state, count, amount in rows}

    # -- campaign closures ----------------------------------------------------------------------------------

    async def record_closure(self, values: dict[str, Any]) -> None:
        insert = insert_for(self.session)
        await self.session.execute(
            insert(CampaignClosure).values(**values).on_conflict_do_nothing(index_elements=["campaign_id"])
        )

    async def schedule_charges(self, now: datetime, campaign_id: uuid.UUID | None = None) -> int:
        """Active all-or-nothing pledges of succeeded campaigns become due for charging (once)."""
        succeeded = select(CampaignClosure.campaign_id).where(
            CampaignClosure.outcome == "succeeded",
            CampaignClosure.funding_model == FundingModel.ALL_OR_NOTHING.value,
        )
        conditions = [
            Pledge.status == PledgeStatus.ACTIVE,
            Pledge.charge_due_at.is_(None),
            Pledge.charge_attempts == 0,
            Pledge.campaign_id.in_(succeeded),
        ]
        if campaign_id is not None:
            conditions.append(Pledge.campaign_id == campaign_id)
        statement = (
            update(Pledge)
            .where(*conditions)
            .values(charge_due_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        return await self._updated(statement)

    async def cancel_for_closed_campaigns(self, now: datetime, campaign_id: uuid.UUID | None = None) -> int:
        """Pledges of campaigns that failed or were canceled: compensate (detach, release; refund if charged)."""
        ended = select(CampaignClosure.campaign_id).where(CampaignClosure.outcome.in_(["failed", "canceled"]))
        conditions = [
            Pledge.status.in_([PledgeStatus.ACTIVE, PledgeStatus.PAYMENT_FAILED, PledgeStatus.COLLECTED]),
            Pledge.campaign_id.in_(ended),
            lease_free(now),
        ]
        if campaign_id is not None:
            conditions.append(Pledge.campaign_id == campaign_id)
        statement = (
            update(Pledge)
            .where(*conditions)
            .values(
                status=PledgeStatus.COMPENSATING,
                final_status=PledgeStatus.CANCELED,
                cancel_reason="campaign_ended_unsuccessfully",
                lease_token=None,
                lease_until=None,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        return await self._updated(statement)


PLEDGE_REFUNDED = "pledge.refunded"
REFUND_STATUSES = frozenset({PledgeStatus.COLLECTED, PledgeStatus.PARTIALLY_REFUNDED, PledgeStatus.REFUNDED})


async def refresh_refund_totals(session: Any, pledge: Pledge) -> None:
    """``refunded_amount`` = the sum of succeeded refunds; a charged pledge's status follows it (and goes back
    if a refund later fails). ``pledge`` must be loaded in ``session`` (locked on PostgreSQL).

    Every change of the total, up (a refund succeeded) or down (a succeeded refund failed later, and the money
    went back to the campaign), is published as ``pledge.refunded`` in the same transaction (the outbox), with
    the new cumulative total and ``revision``, the pledge's count of such changes: the order a consumer keeps
    the latest total by, whatever order the events arrive in."""
    sums = await RefundRepository(session).sums(pledge.id)
    refunded = sums.get(RefundStatus.SUCCEEDED, 0)
    previous = pledge.refunded_amount
    pledge.refunded_amount = refunded
    if refunded != previous:
        pledge.refund_revision = (pledge.refund_revision or 0) + 1
        await publish(
            session,
            OutboxEvent,
            PLEDGE_REFUNDED,
            {
                "pledge_id": str(pledge.id),
                "campaign_id": str(pledge.campaign_id),
                "currency": pledge.currency,
                "charged_amount": pledge.charged_amount,
                "refunded_amount": refunded,
                "refunded_now_amount": refunded - previous,  # negative when a refund failed after succeeding
                "revision": pledge.refund_revision,
            },
        )
    if pledge.status in REFUND_STATUSES and pledge.charged_amount > 0:
        if refunded >= pledge.charged_amount:
            pledge.status = PledgeStatus.REFUNDED
        elif refunded > 0:
            pledge.status = PledgeStatus.PARTIALLY_REFUNDED
        else:
            pledge.status = PledgeStatus.COLLECTED


class RefundRepository(RepositoryBase[PledgeRefund]):
    model = PledgeRefund

    async def for_update(self, refund_id: uuid.UUID) -> PledgeRefund | None:
        return await self.get_one_or_none(
            select(PledgeRefund).where(PledgeRefund.id == refund_id).execution_options(populate_existing=True)
        )

    async def by_stripe_id(self, stripe_refund_id: str) -> PledgeRefund | None:
        return await self.get_one_or_none(
            select(PledgeRefund)
            .where(PledgeRefund.stripe_refund_id == stripe_refund_id)
            .execution_options(populate_existing=True)
        )

    async def sums(self, pledge_id: uuid.UUID) -> dict[RefundStatus, int]:
        statement = (
            select(PledgeRefund.status, func.coalesce(func.sum(PledgeRefund.amount), 0))
            .where(PledgeRefund.pledge_id == pledge_id)
            .group_by(PledgeRefund.status)
        )
        return {RefundStatus(s): int(a) for s, a in (await self.session.execute(statement)).all()}
