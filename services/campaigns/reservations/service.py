"""Reservations: the pledges service holds capacity before it takes payment, then confirms or releases it.

All checks and increments of one call happen in the request's single transaction; a refusal raises, and the
unit of work rolls back every increment made before it. No lock is held across a network call: the pledges
service calls Stripe between ``reserve`` and ``confirm``, each a separate short transaction here.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.campaigns.exceptions import CampaignNotFound
from services.campaigns.campaigns.repository import CampaignRepository
from services.campaigns.config import Settings
from services.campaigns.lifecycle import capabilities
from services.campaigns.models import Campaign, Reservation, ReservationStatus, Tier
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
from services.campaigns.reservations.repository import CapacityRepository, ReservationRepository
from services.campaigns.tiers.exceptions import TierNotFound
from services.campaigns.tiers.repository import TierRepository, TierVersionRepository
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


# Logs name ids and outcomes only: never a campaign total, which the disclosure policy may hide.
log = structlog.get_logger("campaigns.reservations")


def _same_request(reservation: Reservation, campaign_id: uuid.UUID, data: schemas.ReservationCreate) -> bool:
    return (
        reservation.campaign_id == campaign_id
        and reservation.tier_id == data.tier_id
        and reservation.tier_version == data.tier_version
        and reservation.backer_id == data.backer_id
        and reservation.amount == data.amount
        and reservation.currency == data.currency
        and reservation.shipping_region == data.shipping_region
    )


class ReservationService:
    async def reserve(
        self, session: AsyncSession, campaign_id: uuid.UUID, data: schemas.ReservationCreate, settings: Settings
    ) -> tuple[Reservation, bool]:
        """Returns the reservation and whether this call created it (False: an idempotent repeat)."""
        now = utcnow()
        campaign = await CampaignRepository(session).get(campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        tier = await TierRepository(session).get_in_campaign(campaign_id, data.tier_id)
        if tier is None:
            raise TierNotFound(data.tier_id)

        reservations = ReservationRepository(session)
        inserted = await reservations.insert_pending(
            {
                "id": data.pledge_id,
                "campaign_id": campaign_id,
                "tier_id": data.tier_id,
                "tier_version": data.tier_version,
                "backer_id": data.backer_id,
                "amount": data.amount,
                "currency": data.currency,
                "shipping_region": data.shipping_region,
                "status": ReservationStatus.PENDING,
                "expires_at": now + timedelta(seconds=settings.reservation_ttl_seconds),
                "created_at": now,
            }
        )
        if not inserted:
            existing = await reservations.get_fresh(data.pledge_id)
            if existing is None or not _same_request(existing, campaign_id, data):
                raise PledgeIdReused()
            return existing, False

        await self._check_terms(session, campaign, tier, data)
        capacity = CapacityRepository(session)
        if not await capacity.hold_campaign_amount(campaign_id, data.amount, now):
            if not await capacity.campaign_accepts(campaign_id, now):
                raise CampaignNotAcceptingPledges()
            raise CapReached()
        if not await capacity.hold_tier_unit(tier.id, data.tier_version):
            current = await capacity.current_tier_version(tier.id)
            if current is not None and current != data.tier_version:
                raise TermsChanged(current)
            raise TierSoldOut()
        if not await capacity.hold_backer_unit(tier.id, data.backer_id, tier.per_backer_limit):
            raise BackerLimitReached()

        reservation = await reservations.get_fresh(data.pledge_id)
        assert reservation is not None
        log.info("reservation.reserved", campaign_id=str(campaign_id), pledge_id=str(data.pledge_id))
        return reservation, True

    async def _check_terms(
        self, session: AsyncSession, campaign: Campaign, tier: Tier, data: schemas.ReservationCreate
    ) -> None:
        """What the pledge must satisfy in the terms themselves: currency, version, shipping, minimum amount."""
        if data.currency != campaign.currency:
            raise CurrencyMismatch()
        version = await TierVersionRepository(session).get_version(data.tier_id, data.tier_version)
        if version is None or tier.current_version != data.tier_version:
            raise TermsChanged(tier.current_version)
        shipping_amount = 0
        if version.shipping:
            rates = {rate["region"]: int(rate["shipping_amount"]) for rate in version.shipping}
            if data.shipping_region not in rates:
                raise ShippingRegionUnavailable()
            shipping_amount = rates[data.shipping_region]
        if data.amount < version.price_amount + shipping_amount:
            raise AmountBelowMinimum()

    async def _own(self, session: AsyncSession, campaign_id: uuid.UUID, pledge_id: uuid.UUID) -> Reservation:
        reservation = await ReservationRepository(session).get_fresh(pledge_id, lock=True)
        if reservation is None or reservation.campaign_id != campaign_id:
            raise ReservationNotFound()
        return reservation

    async def confirm(self, session: AsyncSession, campaign_id: uuid.UUID, pledge_id: uuid.UUID) -> Reservation:
        """Pending -> confirmed: the amount moves from reserved to committed. Repeating it is harmless."""
        now = utcnow()
        reservation = await self._own(session, campaign_id, pledge_id)
        if reservation.status is ReservationStatus.CONFIRMED:
            return reservation
        if reservation.status is not ReservationStatus.PENDING:
            raise ReservationNotPending(reservation.status)
        if reservation.expires_at <= now:
            raise ReservationExpired()
        reservations = ReservationRepository(session)
        capacity = CapacityRepository(session)
        if not await reservations.set_status(
            pledge_id,
            expected=ReservationStatus.PENDING,
            status=ReservationStatus.CONFIRMED,
            values={"confirmed_at": now},
        ):
            raise ReservationNotPending(ReservationStatus.PENDING)  # unreachable: the row is locked
        if not await capacity.commit_campaign_amount(campaign_id, reservation.amount):
            raise CampaignNotAcceptingPledges()
        await capacity.commit_tier_unit(reservation.tier_id)
        log.info("reservation.confirmed", campaign_id=str(campaign_id), pledge_id=str(pledge_id))
        confirmed = await reservations.get_fresh(pledge_id)
        assert confirmed is not None
        return confirmed

    async def release(
        self, session: AsyncSession, campaign_id: uuid.UUID, pledge_id: uuid.UUID, reason: str
    ) -> Reservation:
        """Pending or confirmed -> released, giving the capacity back. Releasing twice is harmless. A
        confirmed reservation can be released after the close too (a pledge dropped after a failed charge)."""
        reservation = await self._own(session, campaign_id, pledge_id)
        if reservation.status in (ReservationStatus.RELEASED, ReservationStatus.EXPIRED):
            return reservation
        await self._give_back(session, reservation, ReservationStatus.RELEASED, reason)
        log.info("reservation.released", campaign_id=str(campaign_id), pledge_id=str(pledge_id), reason=reason)
        released = await ReservationRepository(session).get_fresh(pledge_id)
        assert released is not None
        return released

    async def _give_back(
        self, session: AsyncSession, reservation: Reservation, status: ReservationStatus, reason: str
    ) -> bool:
        now = utcnow()
        previous = reservation.status
        changed = await ReservationRepository(session).set_status(
            reservation.id,
            expected=previous,
            status=status,
            values={"released_at": now, "release_reason": reason},
            expires_before=now if status is ReservationStatus.EXPIRED else None,
        )
        if not changed:
            return False
        was_confirmed = previous is ReservationStatus.CONFIRMED
        capacity = CapacityRepository(session)
        await capacity.drop_campaign_amount(reservation.campaign_id, reservation.amount, was_confirmed=was_confirmed)
        await capacity.drop_tier_unit(reservation.tier_id, was_confirmed=was_confirmed)
        await capacity.drop_backer_unit(reservation.tier_id, reservation.backer_id)
        return True

    async def expire_overdue(self, session: AsyncSession, *, limit: int) -> int:
        """The sweeper's step: release pending reservations past their expiry. Each row is taken by a
        compare-and-set on its status, so two replicas sweeping at once never release one twice."""
        expired = 0
        for reservation in await ReservationRepository(session).expired_pending(utcnow(), limit):
            if await self._give_back(session, reservation, ReservationStatus.EXPIRED, "expired"):
                expired += 1
                log.info("reservation.expired", campaign_id=str(reservation.campaign_id), pledge_id=str(reservation.id))
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
