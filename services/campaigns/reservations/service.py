"""Reservations: the pledges service holds capacity before it takes payment, then confirms or releases it.

Every change of capacity is one atomic, conditional write (one statement on PostgreSQL; a few in the request's
exclusive transaction on SQLite, rolled back on a refusal): see ``repository.py``. The reads before it
(terms, a repeat of the pledge id) take no lock. No lock is held across a network call: the pledges service
calls Stripe between ``reserve`` and ``confirm``, each a separate short transaction here.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.campaigns.exceptions import CampaignNotFound
from services.campaigns.campaigns.repository import CampaignRepository
from services.campaigns.config import Settings
from services.campaigns.lifecycle import capabilities
from services.campaigns.models import CampaignStatus, Reservation, ReservationStatus
from services.campaigns.reservations import schemas
from services.campaigns.reservations.exceptions import (
    AmountBelowMinimum,
    BackerLimitReached,
    CampaignNotAcceptingPledges,
    CapReached,
    CurrencyMismatch,
    PledgeIdReused,
    ReservationExpired,
    ReservationNotFound,
    ReservationNotPending,
    ShippingRegionUnavailable,
    TermsChanged,
    TierSoldOut,
)
from services.campaigns.reservations.repository import (
    CapacityRepository,
    ReservationRepository,
    ReservationTerms,
    ReserveRefusal,
    first_refusal,
)
from services.campaigns.tiers.exceptions import TierNotFound
from shared.db import utcnow
from shared.errors import UnprocessableContent


def encode_cursor(at: datetime, reservation_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([at.isoformat(), str(reservation_id)])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        at, reservation_id = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(at), uuid.UUID(reservation_id)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise UnprocessableContent("The cursor is not one this list returned.", code="invalid_cursor") from exc


# A reservation as the routes return it: a Core row on the hot path, an ORM object elsewhere (same attributes).
ReservationRow = Any

# Logs name ids and outcomes only: never a campaign total, which the disclosure policy may hide.
log = structlog.get_logger("campaigns.reservations")


def _same_request(existing: Mapping[str, Any], campaign_id: uuid.UUID, data: schemas.ReservationCreate) -> bool:
    return (
        existing["campaign_id"] == campaign_id
        and existing["tier_id"] == data.tier_id
        and existing["tier_version"] == data.tier_version
        and existing["backer_id"] == data.backer_id
        and existing["amount"] == data.amount
        and existing["currency"] == data.currency
        and existing["shipping_region"] == data.shipping_region
    )


def _check_terms(terms: ReservationTerms, data: schemas.ReservationCreate) -> None:
    """What the pledge must satisfy in the terms themselves: currency, version, shipping, minimum amount."""
    if data.currency != terms.currency:
        raise CurrencyMismatch()
    if terms.price_amount is None or terms.current_version != data.tier_version:
        assert terms.current_version is not None
        raise TermsChanged(terms.current_version)
    shipping_amount = 0
    if terms.shipping:
        rates = {rate["region"]: int(rate["shipping_amount"]) for rate in terms.shipping}
        if data.shipping_region not in rates:
            raise ShippingRegionUnavailable()
        shipping_amount = rates[data.shipping_region]
    if data.amount < terms.price_amount + shipping_amount:
        raise AmountBelowMinimum()


def _refusal(refusal: ReserveRefusal) -> Exception:
    match refusal.reason:
        case "not_accepting":
            return CampaignNotAcceptingPledges()
        case "terms" if refusal.current_version is not None:
            return TermsChanged(refusal.current_version)
        case "tier_quantity":
            return TierSoldOut()
        case "backer_limit":
            return BackerLimitReached()
        case _:
            return CapReached()


class ReservationService:
    async def reserve(
        self, session: AsyncSession, campaign_id: uuid.UUID, data: schemas.ReservationCreate, settings: Settings
    ) -> tuple[ReservationRow, bool]:
        """Returns the reservation and whether this call created it (False: an idempotent repeat).

        One read (terms, and a reservation already made with this pledge id), the checks of the terms, then
        one conditional write that holds the capacity (see the repository)."""
        now = utcnow()
        values = {
            "id": data.pledge_id,
            "campaign_id": campaign_id,
            "tier_id": data.tier_id,
            "tier_version": data.tier_version,
            "backer_id": data.backer_id,
            "amount": data.amount,
            "currency": data.currency,
            "shipping_region": data.shipping_region,
            "expires_at": now + timedelta(seconds=settings.reservation_ttl_seconds),
            "created_at": now,
        }
        terms = await ReservationRepository(session).terms(values)
        if terms is None:
            raise CampaignNotFound(campaign_id)
        if terms.tier_id is None:
            raise TierNotFound(data.tier_id)
        if terms.existing is not None:
            return await self._repeat_or_confirm(session, terms.existing, campaign_id, data), False
        _check_terms(terms, data)
        # Refused on what was just read (a full cap, a sold-out tier): no write, no lock. Capacity only comes
        # back through a release, and a request read a moment before that release is refused all the same.
        early = first_refusal(terms.capacity, values)
        if early is not None:
            raise _refusal(early)
        capacity = CapacityRepository(session)
        try:
            outcome = await capacity.reserve(values, per_backer_limit=terms.per_backer_limit, confirmed=data.confirmed)
        except ReserveRefusal as refusal:
            raise _refusal(refusal) from None
        if outcome.reservation is None:  # the same pledge id, sent concurrently: the first one won
            existing = await capacity.get_existing(data.pledge_id)
            if existing is None:
                raise PledgeIdReused()
            return await self._repeat_or_confirm(session, existing._asdict(), campaign_id, data), False
        log.info(
            "reservation.reserved",
            campaign_id=str(campaign_id),
            pledge_id=str(data.pledge_id),
            confirmed=data.confirmed,
        )
        return outcome.reservation, True

    async def _repeat_or_confirm(
        self,
        session: AsyncSession,
        existing: Mapping[str, Any],
        campaign_id: uuid.UUID,
        data: schemas.ReservationCreate,
    ) -> Any:
        """The reservation already made with this pledge id. A confirmed reserve repeating a pending one (a
        pledge that held its capacity before saving the card) confirms it, as ``confirm`` would."""
        if not _same_request(existing, campaign_id, data):
            raise PledgeIdReused()
        if data.confirmed and existing["status"] == ReservationStatus.PENDING:
            return await self.confirm(session, campaign_id, data.pledge_id)
        return SimpleNamespace(**existing)

    async def confirm(self, session: AsyncSession, campaign_id: uuid.UUID, pledge_id: uuid.UUID) -> ReservationRow:
        """Pending -> confirmed: the amount moves from reserved to committed. Repeating it is harmless."""
        now = utcnow()
        confirmed = await CapacityRepository(session).confirm(campaign_id, pledge_id, now)
        if confirmed is not None:
            log.info("reservation.confirmed", campaign_id=str(campaign_id), pledge_id=str(pledge_id))
            return confirmed
        # Nothing changed: say why, from the reservation and the campaign as they are now.
        reservation = await self._own(session, campaign_id, pledge_id)
        if reservation.status == ReservationStatus.CONFIRMED:
            return reservation
        if reservation.status != ReservationStatus.PENDING:
            raise ReservationNotPending(reservation.status)
        if reservation.expires_at <= now:
            raise ReservationExpired()
        campaign = await CampaignRepository(session).get(campaign_id)
        if campaign is None or campaign.status is not CampaignStatus.LIVE:
            raise CampaignNotAcceptingPledges()
        raise ReservationNotPending(ReservationStatus.PENDING)  # changed by another call in between: retry

    async def _own(self, session: AsyncSession, campaign_id: uuid.UUID, pledge_id: uuid.UUID) -> ReservationRow:
        reservation = await ReservationRepository(session).get_row(pledge_id)
        if reservation is None or reservation.campaign_id != campaign_id:
            raise ReservationNotFound()
        return reservation

    async def release(
        self, session: AsyncSession, campaign_id: uuid.UUID, pledge_id: uuid.UUID, reason: str
    ) -> ReservationRow:
        """Pending or confirmed -> released, giving the capacity back. Releasing twice is harmless. A
        confirmed reservation can be released after the close too (a pledge dropped after a failed charge)."""
        released = await CapacityRepository(session).release(campaign_id, pledge_id, reason, utcnow())
        if released is not None:
            log.info("reservation.released", campaign_id=str(campaign_id), pledge_id=str(pledge_id), reason=reason)
            return released
        # Already released or expired (or unknown): the reservation as it is.
        return await self._own(session, campaign_id, pledge_id)

    async def expire_one(self, session: AsyncSession, pledge_id: uuid.UUID) -> bool:
        """The sweeper's step for one reservation: pending past its expiry -> expired, capacity given back.
        A compare-and-set on the status, so two replicas sweeping at once never release one twice."""
        expired = await CapacityRepository(session).expire(pledge_id, utcnow())
        if expired is None:
            return False
        log.info("reservation.expired", campaign_id=str(expired.campaign_id), pledge_id=str(pledge_id))
        return True

    async def overdue(self, session: AsyncSession, *, limit: int) -> Sequence[uuid.UUID]:
        """Pending reservations past their expiry, oldest first."""
        return await ReservationRepository(session).overdue_ids(utcnow(), limit)

    async def expire_overdue(self, session: AsyncSession, *, limit: int) -> int:
        """Release up to ``limit`` pending reservations past their expiry; how many this call expired."""
        expired = 0
        for pledge_id in await self.overdue(session, limit=limit):
            if await self.expire_one(session, pledge_id):
                expired += 1
        return expired

    async def get(self, session: AsyncSession, campaign_id: uuid.UUID, pledge_id: uuid.UUID) -> Reservation:
        reservation = await ReservationRepository(session).get_fresh(pledge_id)
        if reservation is None or reservation.campaign_id != campaign_id:
            raise ReservationNotFound()
        return reservation

    async def list(
        self,
        session: AsyncSession,
        campaign_id: uuid.UUID,
        *,
        statuses: Sequence[ReservationStatus] | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[Reservation], str | None]:
        if await CampaignRepository(session).get(campaign_id) is None:
            raise CampaignNotFound(campaign_id)
        after = decode_cursor(cursor) if cursor else None
        rows = await ReservationRepository(session).list_for_campaign(
            campaign_id, statuses=statuses, after=after, limit=limit + 1
        )
        page = rows[:limit]
        next_cursor = encode_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit and page else None
        return page, next_cursor

    async def snapshot(self, session: AsyncSession, campaign_id: uuid.UUID) -> schemas.CampaignSnapshot:
        campaign = await CampaignRepository(session).get(campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        caps = capabilities(campaign.status)
        now = utcnow()
        return schemas.CampaignSnapshot(
            id=campaign.id,
            creator_id=campaign.creator_id,
            title=campaign.title,
            status=campaign.status,
            capabilities=schemas.CampaignCapabilities(
                accepts_pledges=caps.accepts_pledges,
                terms_editable=caps.terms_editable,
                may_charge=caps.may_charge,
                may_refund=caps.may_refund,
                closed=caps.closed,
            ),
            accepts_pledges=caps.accepts_pledges and campaign.deadline_at is not None and campaign.deadline_at > now,
            funding_model=campaign.funding_model,
            currency=campaign.currency,
            goal_amount=campaign.goal_amount,
            cap_amount=campaign.cap_amount,
            uncapped=campaign.uncapped,
            deadline_at=campaign.deadline_at,
            committed_amount=campaign.committed_amount,
            reserved_amount=campaign.reserved_amount,
            backer_count=campaign.backer_count,
            launched_at=campaign.launched_at,
            closed_at=campaign.closed_at,
        )

    async def totals(self, session: AsyncSession, campaign_id: uuid.UUID) -> schemas.CampaignTotals:
        campaign = await CampaignRepository(session).get(campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        sums = await ReservationRepository(session).sums(campaign_id)
        confirmed_count, confirmed_sum = sums.get(ReservationStatus.CONFIRMED, (0, 0))
        pending_count, pending_sum = sums.get(ReservationStatus.PENDING, (0, 0))
        return schemas.CampaignTotals(
            campaign_id=campaign.id,
            currency=campaign.currency,
            committed_amount=campaign.committed_amount,
            reserved_amount=campaign.reserved_amount,
            backer_count=campaign.backer_count,
            confirmed_sum_amount=confirmed_sum,
            confirmed_count=confirmed_count,
            pending_sum_amount=pending_sum,
            pending_count=pending_count,
            consistent=(
                campaign.committed_amount == confirmed_sum
                and campaign.reserved_amount == pending_sum
                and campaign.backer_count == confirmed_count
            ),
        )


reservation_service = ReservationService()
