"""The SQL that keeps caps. Every change of a running total is conditional, so that a cap holds under any
concurrency, with any number of replicas on one database.

PostgreSQL (production, several replicas): each capacity change — reserve, confirm, release, expire — is ONE
statement, run in its own transaction (the reservation routes use autocommit, see
:func:`services.campaigns.reservations.transactions.one_statement_per_transaction`). The statement first
locks the rows it changes with ``FOR NO KEY UPDATE``, checks every limit on their latest committed versions
(READ COMMITTED re-evaluates a locked row's conditions after waiting), then applies all its changes or none.
The new totals are computed from the values the locking step read (the latest versions, under our lock),
never from the row version the UPDATE's own scan found: that one can be older (the statement's snapshot),
and PostgreSQL checks constraints on the tuple computed from it before it notices the newer version — a
release could then fail ``committed_quantity >= 0`` spuriously. A hot campaign row is therefore held only while the server finishes that statement and flushes its commit:
no client round trip and no turn of a busy event loop between "locked" and "committed". Rows that fail a
condition on the statement's snapshot are filtered before locking, so refusals (a full cap) wait on nobody.

Lock order, everywhere: campaign, tier, backer count, reservation (``FOR NO KEY UPDATE OF c, t, b, r``
locks in that order; the tier edit and vetting paths lock the campaign, then the tier). No cycle, no
deadlock. ``NO KEY UPDATE`` rather than ``UPDATE``, so that foreign key checks (``KEY SHARE``) of inserts
referencing the campaign never wait on it.

SQLite (embedded, one writer at a time: ``BEGIN IMMEDIATE``): the same conditions as a short sequence of
conditional statements in the request's transaction, rolled back on a refusal.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    Row,
    String,
    and_,
    bindparam,
    column,
    func,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import UpdateBase

from services.campaigns.models import (
    BackerTierCount,
    Campaign,
    CampaignStatus,
    Reservation,
    ReservationStatus,
    Tier,
    TierVersion,
)
from shared.db import table_of
from shared.repository import RepositoryBase

campaigns = table_of(Campaign)
tiers = table_of(Tier)
tier_versions = table_of(TierVersion)
reservations = table_of(Reservation)
backer_counts = table_of(BackerTierCount)

# The columns of a reservation as the API shows it (Core rows: no ORM identity map on the hot path).
RESERVATION_COLUMNS = tuple(reservations.c)


def is_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# -- the facts a reservation is checked against, read once before any write -----------------------------------

_existing = reservations.alias("existing")
_CAPACITY_COLUMNS = (
    campaigns.c.status,
    campaigns.c.deadline_at,
    campaigns.c.cap_amount,
    campaigns.c.reserved_amount,
    campaigns.c.committed_amount,
    tiers.c.current_version,
    tiers.c.quantity_limit,
    tiers.c.reserved_quantity,
    tiers.c.committed_quantity,
    tiers.c.per_backer_limit,
    func.coalesce(backer_counts.c.active_count, 0).label("active_count"),
)
_TERMS = (
    select(
        campaigns.c.currency,
        tiers.c.id.label("tier_id"),
        *_CAPACITY_COLUMNS,
        tier_versions.c.price_amount,
        tier_versions.c.shipping,
        *(c.label(f"existing_{c.name}") for c in _existing.c),
    )
    .select_from(
        campaigns.outerjoin(tiers, and_(tiers.c.id == bindparam("tier_id"), tiers.c.campaign_id == campaigns.c.id))
        .outerjoin(
            tier_versions,
            and_(tier_versions.c.tier_id == tiers.c.id, tier_versions.c.version == bindparam("tier_version")),
        )
        .outerjoin(
            backer_counts,
            and_(backer_counts.c.tier_id == tiers.c.id, backer_counts.c.backer_id == bindparam("backer_id")),
        )
        .outerjoin(_existing, _existing.c.id == bindparam("pledge_id"))
    )
    .where(campaigns.c.id == bindparam("campaign_id"))
)

# PostgreSQL: the same read also makes sure the (tier, backer) count row exists (count 0), so that the
# reserve statement can lock it — only when the campaign would take the amount, so that a refusal (a full
# cap) writes nothing. A row left at 0 means "no active reservation".
_SEED_BACKER_COUNT = (
    postgresql.insert(backer_counts)
    .from_select(
        ["tier_id", "backer_id", "active_count"],
        select(tiers.c.id, bindparam("backer_id", type_=String), literal_column("0"))
        .select_from(tiers.join(campaigns, campaigns.c.id == tiers.c.campaign_id))
        .where(
            tiers.c.id == bindparam("tier_id"),
            campaigns.c.id == bindparam("campaign_id"),
            campaigns.c.status == CampaignStatus.LIVE,
            campaigns.c.deadline_at > bindparam("now"),
            or_(
                campaigns.c.cap_amount.is_(None),
                campaigns.c.reserved_amount + campaigns.c.committed_amount + bindparam("amount", type_=BigInteger)
                <= campaigns.c.cap_amount,
            ),
        ),
    )
    .on_conflict_do_nothing()
    .cte("seed_backer_count")
)
_TERMS_AND_SEED = _TERMS.add_cte(_SEED_BACKER_COUNT)


@dataclass(frozen=True, slots=True)
class ReservationTerms:
    currency: str
    tier_id: uuid.UUID | None
    current_version: int | None
    per_backer_limit: int | None
    price_amount: int | None  # None: the version asked for does not exist
    shipping: list[dict[str, Any]] | None
    existing: dict[str, Any] | None  # a reservation already made with this pledge id
    capacity: Row[*tuple[Any, ...]]  # the running totals and limits, as of this read (see first_refusal)


def first_refusal(facts: Any, values: Mapping[str, Any], *, campaign_held: bool = False) -> ReserveRefusal | None:
    """The first condition a reservation of ``values`` fails on ``facts`` (running totals and limits), in
    the order the API documents; None if it fits. ``campaign_held``: the amount is already held on the
    campaign (SQLite, after its conditional update passed), so its conditions are not checked again."""
    if not campaign_held:
        deadline = facts.deadline_at
        if facts.status != CampaignStatus.LIVE or deadline is None or deadline <= values["created_at"]:
            return ReserveRefusal("not_accepting")
        held = facts.reserved_amount + facts.committed_amount
        if facts.cap_amount is not None and held + values["amount"] > facts.cap_amount:
            return ReserveRefusal("cap")
    if facts.current_version != values["tier_version"]:
        return ReserveRefusal("terms", facts.current_version)
    claimed = facts.reserved_quantity + facts.committed_quantity
    if facts.quantity_limit is not None and claimed + 1 > facts.quantity_limit:
        return ReserveRefusal("tier_quantity")
    if facts.per_backer_limit is not None and facts.active_count + 1 > facts.per_backer_limit:
        return ReserveRefusal("backer_limit")
    return None


# -- PostgreSQL: one statement per capacity change ------------------------------------------------------------

# A reservation is held pending (the payment follows; ``confirm`` commits it, or it expires), or held and
# committed at once when the payment was secured before asking (an all-or-nothing pledge's saved card): the
# same statement, with the amount going to the committed total and the backer counted.
_RESERVE_TEMPLATE = """
WITH locked AS (
    SELECT c.reserved_amount, c.committed_amount, c.backer_count, t.reserved_quantity, t.committed_quantity,
           b.active_count
    FROM campaigns AS c
    JOIN tiers AS t ON t.id = CAST(:tier_id AS uuid) AND t.campaign_id = c.id
    JOIN backer_tier_counts AS b ON b.tier_id = t.id AND b.backer_id = CAST(:backer_id AS varchar)
    WHERE c.id = CAST(:campaign_id AS uuid)
      AND c.status = 'live' AND c.deadline_at > CAST(:now AS timestamptz)
      AND (c.cap_amount IS NULL
           OR c.reserved_amount + c.committed_amount + CAST(:amount AS bigint) <= c.cap_amount)
      AND t.current_version = CAST(:tier_version AS integer)
      AND (t.quantity_limit IS NULL OR t.reserved_quantity + t.committed_quantity + 1 <= t.quantity_limit)
      AND (t.per_backer_limit IS NULL OR b.active_count + 1 <= t.per_backer_limit)
    FOR NO KEY UPDATE OF c, t, b
), inserted AS (
    INSERT INTO reservations (id, campaign_id, tier_id, tier_version, backer_id, amount, currency,
                              shipping_region, status, expires_at, created_at, confirmed_at)
    SELECT CAST(:pledge_id AS uuid), CAST(:campaign_id AS uuid), CAST(:tier_id AS uuid),
           CAST(:tier_version AS integer), CAST(:backer_id AS varchar), CAST(:amount AS bigint),
           CAST(:currency AS varchar), CAST(:shipping_region AS varchar), '{status}',
           CAST(:expires_at AS timestamptz), CAST(:now AS timestamptz), {confirmed_at}
    FROM locked
    ON CONFLICT (id) DO NOTHING
    RETURNING *
), held_campaign AS (
    UPDATE campaigns SET {campaign_totals}
    FROM locked WHERE campaigns.id = CAST(:campaign_id AS uuid) AND EXISTS (SELECT FROM inserted)
), held_tier AS (
    UPDATE tiers SET {tier_totals}
    FROM locked WHERE tiers.id = CAST(:tier_id AS uuid) AND EXISTS (SELECT FROM inserted)
), held_backer AS (
    UPDATE backer_tier_counts SET active_count = locked.active_count + 1
    FROM locked
    WHERE backer_tier_counts.tier_id = CAST(:tier_id AS uuid)
      AND backer_tier_counts.backer_id = CAST(:backer_id AS varchar) AND EXISTS (SELECT FROM inserted)
)
SELECT (SELECT count(*) FROM locked) AS admitted, inserted.*
FROM (SELECT 1) AS one LEFT JOIN inserted ON true
"""
_RESERVE = text(
    _RESERVE_TEMPLATE.format(
        status="pending",
        confirmed_at="NULL",
        campaign_totals="reserved_amount = locked.reserved_amount + CAST(:amount AS bigint)",
        tier_totals="reserved_quantity = locked.reserved_quantity + 1",
    )
).columns(column("admitted", Integer), *RESERVATION_COLUMNS)
_RESERVE_CONFIRMED = text(
    _RESERVE_TEMPLATE.format(
        status="confirmed",
        confirmed_at="CAST(:now AS timestamptz)",
        campaign_totals="committed_amount = locked.committed_amount + CAST(:amount AS bigint), "
        "backer_count = locked.backer_count + 1",
        tier_totals="committed_quantity = locked.committed_quantity + 1",
    )
).columns(column("admitted", Integer), *RESERVATION_COLUMNS)

_CONFIRM = text(
    """
WITH locked AS (
    SELECT r.id, r.campaign_id, r.tier_id, r.amount,
           c.reserved_amount, c.committed_amount, c.backer_count, t.reserved_quantity, t.committed_quantity
    FROM reservations AS r
    JOIN campaigns AS c ON c.id = r.campaign_id
    JOIN tiers AS t ON t.id = r.tier_id
    WHERE r.id = CAST(:pledge_id AS uuid) AND r.campaign_id = CAST(:campaign_id AS uuid)
      AND r.status = 'pending' AND r.expires_at > CAST(:now AS timestamptz) AND c.status = 'live'
    FOR NO KEY UPDATE OF c, t, r
), confirmed AS (
    UPDATE reservations SET status = 'confirmed', confirmed_at = CAST(:now AS timestamptz)
    FROM locked WHERE reservations.id = locked.id
    RETURNING reservations.*
), committed_campaign AS (
    UPDATE campaigns SET reserved_amount = locked.reserved_amount - locked.amount,
                         committed_amount = locked.committed_amount + locked.amount,
                         backer_count = locked.backer_count + 1
    FROM locked WHERE campaigns.id = locked.campaign_id
), committed_tier AS (
    UPDATE tiers SET reserved_quantity = locked.reserved_quantity - 1,
                     committed_quantity = locked.committed_quantity + 1
    FROM locked WHERE tiers.id = locked.tier_id
)
SELECT * FROM confirmed
"""
).columns(*RESERVATION_COLUMNS)

_GIVE_BACK = """
WITH locked AS (
    SELECT r.id, r.campaign_id, r.tier_id, r.backer_id, r.amount, r.status AS previous_status,
           c.reserved_amount, c.committed_amount, c.backer_count, t.reserved_quantity, t.committed_quantity,
           b.active_count
    FROM reservations AS r
    JOIN campaigns AS c ON c.id = r.campaign_id
    JOIN tiers AS t ON t.id = r.tier_id
    JOIN backer_tier_counts AS b ON b.tier_id = r.tier_id AND b.backer_id = r.backer_id
    WHERE r.id = CAST(:pledge_id AS uuid) AND {condition}
    FOR NO KEY UPDATE OF c, t, b, r
), given_back AS (
    UPDATE reservations SET status = CAST(:status AS varchar), released_at = CAST(:now AS timestamptz),
                            release_reason = CAST(:reason AS varchar)
    FROM locked WHERE reservations.id = locked.id
    RETURNING reservations.*
), campaign_back AS (
    UPDATE campaigns SET
        reserved_amount = locked.reserved_amount
            - CASE WHEN locked.previous_status = 'pending' THEN locked.amount ELSE 0 END,
        committed_amount = locked.committed_amount
            - CASE WHEN locked.previous_status = 'confirmed' THEN locked.amount ELSE 0 END,
        backer_count = locked.backer_count
            - CASE WHEN locked.previous_status = 'confirmed' THEN 1 ELSE 0 END
    FROM locked WHERE campaigns.id = locked.campaign_id
), tier_back AS (
    UPDATE tiers SET
        reserved_quantity = locked.reserved_quantity
            - CASE WHEN locked.previous_status = 'pending' THEN 1 ELSE 0 END,
        committed_quantity = locked.committed_quantity
            - CASE WHEN locked.previous_status = 'confirmed' THEN 1 ELSE 0 END
    FROM locked WHERE tiers.id = locked.tier_id
), backer_back AS (
    UPDATE backer_tier_counts SET active_count = locked.active_count - 1
    FROM locked
    WHERE backer_tier_counts.tier_id = locked.tier_id AND backer_tier_counts.backer_id = locked.backer_id
)
SELECT * FROM given_back
"""
_RELEASE = text(
    _GIVE_BACK.format(condition="r.campaign_id = CAST(:campaign_id AS uuid) AND r.status IN ('pending', 'confirmed')")
).columns(*RESERVATION_COLUMNS)
_EXPIRE = text(
    _GIVE_BACK.format(condition="r.status = 'pending' AND r.expires_at <= CAST(:now AS timestamptz)")
).columns(*RESERVATION_COLUMNS)

# Why a reserve statement admitted nothing: the same conditions, read without locks.
_REFUSAL_FACTS = (
    select(
        campaigns.c.status,
        campaigns.c.deadline_at,
        campaigns.c.cap_amount,
        campaigns.c.reserved_amount,
        campaigns.c.committed_amount,
        tiers.c.current_version,
        tiers.c.quantity_limit,
        tiers.c.reserved_quantity,
        tiers.c.committed_quantity,
        tiers.c.per_backer_limit,
        func.coalesce(backer_counts.c.active_count, 0).label("active_count"),
    )
    .select_from(
        campaigns.join(
            tiers, and_(tiers.c.id == bindparam("tier_id"), tiers.c.campaign_id == campaigns.c.id)
        ).outerjoin(
            backer_counts,
            and_(backer_counts.c.tier_id == tiers.c.id, backer_counts.c.backer_id == bindparam("backer_id")),
        )
    )
    .where(campaigns.c.id == bindparam("campaign_id"))
)

_RESERVATION_BY_ID = select(*RESERVATION_COLUMNS).where(reservations.c.id == bindparam("pledge_id"))


class ReserveRefusal(Exception):
    """A condition of the reserve failed; ``reason`` names the first one, in the order the API documents:
    ``not_accepting``, ``cap``, ``terms`` (with ``current_version``), ``tier_quantity``, ``backer_limit``."""

    def __init__(self, reason: str, current_version: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.current_version = current_version


@dataclass(frozen=True, slots=True)
class ReserveOutcome:
    reservation: Row[Any] | None  # the new reservation; None when the pledge id was already taken


class ReservationRepository(RepositoryBase[Reservation]):
    model = Reservation

    async def terms(self, values: Mapping[str, Any]) -> ReservationTerms | None:
        """For a reservation of ``values`` (its columns, ``id`` the pledge id): the campaign's currency, the
        tier and the asked-for version of its terms, the running totals and limits, and any reservation
        already made with this pledge id — one read. None when the campaign does not exist."""
        params = {
            "campaign_id": values["campaign_id"],
            "tier_id": values["tier_id"],
            "tier_version": values["tier_version"],
            "pledge_id": values["id"],
            "backer_id": values["backer_id"],
            "amount": values["amount"],
            "now": values["created_at"],
        }
        statement = _TERMS_AND_SEED if is_postgresql(self.session) else _TERMS
        row = (await self.session.execute(statement, params)).first()
        if row is None:
            return None
        mapping = row._mapping
        existing = (
            {c.name: mapping[f"existing_{c.name}"] for c in reservations.c}
            if mapping["existing_id"] is not None
            else None
        )
        return ReservationTerms(
            currency=mapping["currency"],
            tier_id=mapping["tier_id"],
            current_version=mapping["current_version"],
            per_backer_limit=mapping["per_backer_limit"],
            price_amount=mapping["price_amount"],
            shipping=mapping["shipping"],
            existing=existing,
            capacity=row,
        )

    async def get_row(self, pledge_id: uuid.UUID) -> Row[Any] | None:
        """The reservation as it is now (a Core row, not an ORM object)."""
        return (await self.session.execute(_RESERVATION_BY_ID, {"pledge_id": pledge_id})).first()

    async def get_fresh(self, pledge_id: uuid.UUID, *, lock: bool = False) -> Reservation | None:
        statement = select(Reservation).where(Reservation.id == pledge_id).execution_options(populate_existing=True)
        if lock:
            statement = statement.with_for_update()
        return await self.get_one_or_none(statement)

    async def overdue_ids(self, now: datetime, limit: int) -> Sequence[uuid.UUID]:
        statement = (
            select(Reservation.id)
            .where(Reservation.status == ReservationStatus.PENDING, Reservation.expires_at <= now)
            .order_by(Reservation.expires_at)
            .limit(limit)
        )
        return (await self.session.execute(statement)).scalars().all()

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
        statement = (
            select(Reservation.status, func.count(), func.coalesce(func.sum(Reservation.amount), 0))
            .where(Reservation.campaign_id == campaign_id)
            .group_by(Reservation.status)
        )
        rows = (await self.session.execute(statement)).all()
        return {ReservationStatus(status): (int(count), int(amount)) for status, count, amount in rows}


class CapacityRepository:
    """Reserve, confirm, release and expire: the conditional changes of the running totals on the campaign,
    the tier and the per-backer count, together with the reservation's state."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.postgresql = is_postgresql(session)

    async def _changed(self, statement: UpdateBase, params: dict[str, Any] | None = None) -> bool:
        # A DML statement without RETURNING executes to a CursorResult (the overloads only say Result).
        result = cast(
            "CursorResult[Any]",
            await self.session.execute(statement.execution_options(synchronize_session=False), params),
        )
        return result.rowcount == 1

    # -- reserve ------------------------------------------------------------------------------------------

    async def reserve(
        self, values: dict[str, Any], *, per_backer_limit: int | None, confirmed: bool = False
    ) -> ReserveOutcome:
        """Insert the reservation and hold its capacity, or raise :class:`ReserveRefusal` having changed
        nothing. ``values`` are the reservation's columns (``id`` is the pledge id). ``confirmed``: held and
        committed at once (the payment is already secured), else pending."""
        if self.postgresql:
            return await self._reserve_postgresql(values, confirmed)
        return await self._reserve_sqlite(values, per_backer_limit, confirmed)

    async def _reserve_postgresql(self, values: dict[str, Any], confirmed: bool) -> ReserveOutcome:
        params = {
            "pledge_id": values["id"],
            "campaign_id": values["campaign_id"],
            "tier_id": values["tier_id"],
            "tier_version": values["tier_version"],
            "backer_id": values["backer_id"],
            "amount": values["amount"],
            "currency": values["currency"],
            "shipping_region": values["shipping_region"],
            "expires_at": values["expires_at"],
            "now": values["created_at"],
        }
        # A refusal read without locks may find the obstacle gone (a release in between): try again, a few
        # times, before calling the cap reached.
        statement = _RESERVE_CONFIRMED if confirmed else _RESERVE
        for _ in range(3):
            row = (await self.session.execute(statement, params)).one()
            if row.admitted:
                return ReserveOutcome(reservation=row if row.id is not None else None)
            if await self.get_existing(values["id"]) is not None:
                return ReserveOutcome(reservation=None)
            await self._raise_refusal(values)
        raise ReserveRefusal("cap")

    async def _raise_refusal(self, values: dict[str, Any], *, campaign_held: bool = False) -> None:
        """Raise the first failing condition, read without locks."""
        facts = (
            await self.session.execute(
                _REFUSAL_FACTS,
                {"campaign_id": values["campaign_id"], "tier_id": values["tier_id"], "backer_id": values["backer_id"]},
            )
        ).first()
        if facts is None:
            raise ReserveRefusal("not_accepting")
        refusal = first_refusal(facts, values, campaign_held=campaign_held)
        if refusal is not None:
            raise refusal

    async def get_existing(self, pledge_id: uuid.UUID) -> Row[Any] | None:
        return (await self.session.execute(_RESERVATION_BY_ID, {"pledge_id": pledge_id})).first()

    async def _reserve_sqlite(
        self, values: dict[str, Any], per_backer_limit: int | None, confirmed: bool
    ) -> ReserveOutcome:
        """The write transaction is exclusive (``BEGIN IMMEDIATE``); a refusal rolls back what came before it."""
        state = (
            {"status": ReservationStatus.CONFIRMED, "confirmed_at": values["created_at"]}
            if confirmed
            else {"status": ReservationStatus.PENDING}
        )
        inserted = (
            await self.session.execute(
                sqlite.insert(reservations)
                .values(**state, **values)
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(*RESERVATION_COLUMNS)
            )
        ).first()
        if inserted is None:
            return ReserveOutcome(reservation=None)
        amount = values["amount"]
        campaign_totals: dict[Any, Any]
        tier_totals: dict[Any, Any]
        if confirmed:
            campaign_totals = {
                campaigns.c.committed_amount: campaigns.c.committed_amount + amount,
                campaigns.c.backer_count: campaigns.c.backer_count + 1,
            }
            tier_totals = {tiers.c.committed_quantity: tiers.c.committed_quantity + 1}
        else:
            campaign_totals = {campaigns.c.reserved_amount: campaigns.c.reserved_amount + amount}
            tier_totals = {tiers.c.reserved_quantity: tiers.c.reserved_quantity + 1}
        campaign_id, tier_id, now = values["campaign_id"], values["tier_id"], values["created_at"]
        if not await self._changed(
            update(campaigns)
            .where(
                campaigns.c.id == campaign_id,
                campaigns.c.status == CampaignStatus.LIVE,
                campaigns.c.deadline_at > now,
                or_(
                    campaigns.c.cap_amount.is_(None),
                    campaigns.c.reserved_amount + campaigns.c.committed_amount + amount <= campaigns.c.cap_amount,
                ),
            )
            .values(campaign_totals)
        ):
            await self._raise_refusal(values)
            raise ReserveRefusal("cap")
        if not await self._changed(
            update(tiers)
            .where(
                tiers.c.id == tier_id,
                tiers.c.current_version == values["tier_version"],
                or_(
                    tiers.c.quantity_limit.is_(None),
                    tiers.c.reserved_quantity + tiers.c.committed_quantity + 1 <= tiers.c.quantity_limit,
                ),
            )
            .values(tier_totals)
        ):
            await self._raise_refusal(values, campaign_held=True)
            raise ReserveRefusal("tier_quantity")
        upsert = sqlite.insert(backer_counts).values(tier_id=tier_id, backer_id=values["backer_id"], active_count=1)
        if not await self._changed(
            upsert.on_conflict_do_update(
                index_elements=["tier_id", "backer_id"],
                set_={"active_count": backer_counts.c.active_count + 1},
                where=None if per_backer_limit is None else backer_counts.c.active_count + 1 <= per_backer_limit,
            )
        ):
            raise ReserveRefusal("backer_limit")
        return ReserveOutcome(reservation=inserted)

    # -- confirm ------------------------------------------------------------------------------------------

    async def confirm(self, campaign_id: uuid.UUID, pledge_id: uuid.UUID, now: datetime) -> Row[Any] | None:
        """Pending (not past its expiry) -> confirmed while the campaign is live: the amount moves from
        reserved to committed. None when nothing changed (the caller reads why)."""
        if self.postgresql:
            params = {"campaign_id": campaign_id, "pledge_id": pledge_id, "now": now}
            return (await self.session.execute(_CONFIRM, params)).first()
        campaign_live = (
            await self.session.execute(
                select(campaigns.c.id).where(campaigns.c.id == campaign_id, campaigns.c.status == CampaignStatus.LIVE)
            )
        ).first()
        if campaign_live is None:
            return None
        confirmed = (
            await self.session.execute(
                update(reservations)
                .where(
                    reservations.c.id == pledge_id,
                    reservations.c.campaign_id == campaign_id,
                    reservations.c.status == ReservationStatus.PENDING,
                    reservations.c.expires_at > now,
                )
                .values(status=ReservationStatus.CONFIRMED, confirmed_at=now)
                .returning(*RESERVATION_COLUMNS)
            )
        ).first()
        if confirmed is None:
            return None
        await self._changed(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(
                reserved_amount=campaigns.c.reserved_amount - confirmed.amount,
                committed_amount=campaigns.c.committed_amount + confirmed.amount,
                backer_count=campaigns.c.backer_count + 1,
            )
        )
        await self._changed(
            update(tiers)
            .where(tiers.c.id == confirmed.tier_id)
            .values(reserved_quantity=tiers.c.reserved_quantity - 1, committed_quantity=tiers.c.committed_quantity + 1)
        )
        return confirmed

    # -- release and expiry -------------------------------------------------------------------------------

    async def release(
        self, campaign_id: uuid.UUID, pledge_id: uuid.UUID, reason: str, now: datetime
    ) -> Row[Any] | None:
        """Pending or confirmed -> released, giving back what it held. None when it was neither."""
        params = {
            "campaign_id": campaign_id,
            "pledge_id": pledge_id,
            "status": ReservationStatus.RELEASED.value,
            "reason": reason,
            "now": now,
        }
        if self.postgresql:
            return (await self.session.execute(_RELEASE, params)).first()
        return await self._give_back_sqlite(
            pledge_id,
            status=ReservationStatus.RELEASED,
            reason=reason,
            now=now,
            condition=and_(
                reservations.c.campaign_id == campaign_id,
                reservations.c.status.in_([ReservationStatus.PENDING, ReservationStatus.CONFIRMED]),
            ),
        )

    async def expire(self, pledge_id: uuid.UUID, now: datetime) -> Row[Any] | None:
        """Pending past its expiry -> expired, giving its capacity back. None when it no longer is (confirmed,
        released or expired meanwhile, by this replica or another)."""
        if self.postgresql:
            params = {
                "pledge_id": pledge_id,
                "status": ReservationStatus.EXPIRED.value,
                "reason": "expired",
                "now": now,
            }
            return (await self.session.execute(_EXPIRE, params)).first()
        return await self._give_back_sqlite(
            pledge_id,
            status=ReservationStatus.EXPIRED,
            reason="expired",
            now=now,
            condition=and_(reservations.c.status == ReservationStatus.PENDING, reservations.c.expires_at <= now),
        )

    async def _give_back_sqlite(
        self, pledge_id: uuid.UUID, *, status: ReservationStatus, reason: str, now: datetime, condition: Any
    ) -> Row[Any] | None:
        before = (
            await self.session.execute(select(reservations.c.status).where(reservations.c.id == pledge_id, condition))
        ).first()
        if before is None:
            return None
        given_back = (
            await self.session.execute(
                update(reservations)
                .where(reservations.c.id == pledge_id, reservations.c.status == before.status)
                .values(status=status, released_at=now, release_reason=reason)
                .returning(*RESERVATION_COLUMNS)
            )
        ).first()
        if given_back is None:
            return None
        amount, tier_id = given_back.amount, given_back.tier_id
        if before.status == ReservationStatus.CONFIRMED:
            campaign_values: dict[str, Any] = {
                "committed_amount": campaigns.c.committed_amount - amount,
                "backer_count": campaigns.c.backer_count - 1,
            }
            tier_values: dict[str, Any] = {"committed_quantity": tiers.c.committed_quantity - 1}
        else:
            campaign_values = {"reserved_amount": campaigns.c.reserved_amount - amount}
            tier_values = {"reserved_quantity": tiers.c.reserved_quantity - 1}
        await self._changed(update(campaigns).where(campaigns.c.id == given_back.campaign_id).values(**campaign_values))
        await self._changed(update(tiers).where(tiers.c.id == tier_id).values(**tier_values))
        await self._changed(
            update(backer_counts)
            .where(backer_counts.c.tier_id == tier_id, backer_counts.c.backer_id == given_back.backer_id)
            .values(active_count=backer_counts.c.active_count - 1)
        )
        return given_back
