"""Pledges: creation (the saga's front door), reads with their access rules, and the backer's actions."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.pledges.clients.campaigns import CampaignFacts, CampaignRefusal, CampaignsUnavailable, TierVersion
from services.pledges.models import (
    FINAL,
    IN_PROGRESS,
    ConsentStatus,
    FundingModel,
    PaymentKind,
    Pledge,
    PledgePayment,
    PledgeRefund,
    PledgeStatus,
    PledgeTerms,
    ReservationState,
)
from services.pledges.payments.stripe_gateway import Declined, PaymentProviderUnavailable
from services.pledges.pledges import exceptions, schemas
from services.pledges.pledges.cursor import decode_cursor, encode_cursor
from services.pledges.pledges.repository import PledgeRepository, insert_pledge
from services.pledges.pledges.saga import (
    CANCELED_BY_BACKER,
    WITHDRAWN_AFTER_TERMS_CHANGE,
    LeaseLost,
    PledgeSaga,
    StepUnavailable,
    ref,
)
from services.pledges.runtime import Runtime
from shared.auth import Principal, Role
from shared.db import utcnow

log = structlog.get_logger("pledges.service")


def request_fingerprint(data: schemas.PledgeCreate) -> str:
    canonical = orjson.dumps(data.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def present_summary(pledge: Pledge) -> schemas.PledgeSummary:
    return schemas.PledgeSummary(**_summary_fields(pledge))


def _summary_fields(pledge: Pledge) -> dict[str, Any]:
    failure = None
    if pledge.failure_code:
        failure = schemas.Failure(code=pledge.failure_code, detail=pledge.failure_detail)
    return {
        "id": pledge.id,
        "campaign_id": pledge.campaign_id,
        "tier_id": pledge.tier_id,
        "backer_id": pledge.backer_id,
        "status": pledge.status,
        "funding_model": pledge.funding_model,
        "currency": pledge.currency,
        "amount": schemas.AmountBreakdown(
            total_amount=pledge.total_amount,
            tier_price_amount=pledge.tier_price_amount,
            shipping_amount=pledge.shipping_amount,
            bonus_amount=pledge.bonus_amount,
        ),
        "shipping_region": pledge.shipping_region,
        "terms_version": pledge.terms_version,
        "payment": schemas.PaymentSummary(
            charged_amount=pledge.charged_amount,
            refunded_amount=pledge.refunded_amount,
            card_saved=pledge.stripe_setup_intent_id is not None and not pledge.payment_method_detached,
            decline_code=pledge.decline_code,
            grace_until=pledge.grace_until,
            disputed=pledge.disputed,
        ),
        "failure": failure,
        "created_at": pledge.created_at,
        "updated_at": pledge.updated_at,
        "canceled_at": pledge.canceled_at,
    }


def present(
    pledge: Pledge,
    terms: Sequence[PledgeTerms],
    payments: Sequence[PledgePayment],
    refunds: Sequence[PledgeRefund],
) -> schemas.Pledge:
    history = [
        schemas.AcceptedTerms(
            version=t.version, content_hash=t.content_hash, content=t.content, accepted_at=t.accepted_at
        )
        for t in terms
    ]
    current = next((t for t in history if t.version == pledge.terms_version), history[-1])
    consent = None
    if pledge.consent_status is not ConsentStatus.NONE:
        consent = schemas.ConsentRequest(
            status=pledge.consent_status,
            version=pledge.consent_version,
            content_hash=pledge.consent_content_hash,
            reasons=list(pledge.consent_reasons or []),
            deadline_at=pledge.consent_deadline_at,
        )
    return schemas.Pledge(
        **_summary_fields(pledge),
        terms=current,
        terms_history=history,
        consent=consent,
        payments=[
            schemas.PaymentRecord(
                kind=p.kind,
                stripe_id=p.stripe_id,
                amount=p.amount,
                currency=p.currency,
                status=p.status,
                decline_code=p.decline_code,
                created_at=p.created_at,
                updated_at=p.updated_at,
            )
            for p in payments
        ],
        refunds=[
            schemas.RefundRecord(
                refund_id=r.id,
                stripe_refund_id=r.stripe_refund_id,
                amount=r.amount,
                currency=r.currency,
                status=r.status,
                failure_reason=r.failure_reason,
                batch_id=r.batch_id,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in refunds
        ],
    )


def refusal_of(pledge: Pledge) -> exceptions.PledgeRefused:
    extra: dict[str, Any] = {"pledge_id": str(pledge.id), "pledge_status": pledge.status.value}
    if pledge.decline_code:
        extra["decline_code"] = pledge.decline_code
    extra.update(pledge.failure_extra or {})
    return exceptions.PledgeRefused(
        pledge.failure_status or 409, pledge.failure_code or "pledge_failed", pledge.failure_detail, extra
    )


class PledgeService:
    # -- creation -----------------------------------------------------------------------------------------

    async def _campaign(self, runtime: Runtime, campaign_id: uuid.UUID, *, fresh: bool = False) -> CampaignFacts:
        try:
            return await runtime.campaigns.campaign(campaign_id, fresh=fresh)
        except CampaignsUnavailable as exc:
            raise exceptions.UpstreamUnavailable("campaigns service") from exc
        except CampaignRefusal as exc:
            raise exceptions.CampaignNotVisible() from exc

    async def _tier_version(self, runtime: Runtime, data: schemas.PledgeCreate) -> TierVersion:
        try:
            return await runtime.campaigns.tier_version(data.campaign_id, data.tier_id, data.tier_version)
        except CampaignsUnavailable as exc:
            raise exceptions.UpstreamUnavailable("campaigns service") from exc
        except CampaignRefusal as exc:
            raise exceptions.TierVersionNotFound() from exc

    async def create(
        self, runtime: Runtime, backer_id: str, idempotency_key: str, data: schemas.PledgeCreate
    ) -> tuple[schemas.Pledge, bool]:
        """Insert the pledge (unique on backer + key), then drive its saga. Returns (pledge, replayed)."""
        started = await self.start(runtime, backer_id, idempotency_key, data)
        if isinstance(started, schemas.Pledge):
            return started, True
        pledge, terms = started
        saga = PledgeSaga(runtime)
        pledge = await self._drive(runtime, pledge, saga)
        if pledge.status in (PledgeStatus.REJECTED, PledgeStatus.DECLINED, PledgeStatus.FAILED):
            raise refusal_of(pledge)
        # A new pledge's whole history is what this request wrote: answer without reading it back.
        return present(pledge, [terms], saga.payments_recorded, []), False

    async def start(
        self, runtime: Runtime, backer_id: str, idempotency_key: str, data: schemas.PledgeCreate
    ) -> tuple[Pledge, PledgeTerms] | schemas.Pledge:
        """Validate against the tier's terms and insert the pledge holding its lease (the saga's first
        persisted state). A key already used answers with that pledge's outcome instead."""
        fingerprint = request_fingerprint(data)
        campaign = await self._campaign(runtime, data.campaign_id)
        version = await self._tier_version(runtime, data)
        if data.currency is not None and data.currency != campaign.currency:
            raise exceptions.CurrencyMismatch()
        shipping = version.shipping_amount(data.shipping_region)
        if shipping is None:
            raise exceptions.ShippingRegionUnavailable()
        if data.amount < version.price_amount + shipping:
            raise exceptions.AmountBelowMinimum()

        now = utcnow()
        pledge_id = uuid.uuid4()
        token = uuid.uuid4()
        aon = campaign.funding_model == FundingModel.ALL_OR_NOTHING.value
        values: dict[str, Any] = {
            "id": pledge_id,
            "backer_id": backer_id,
            "idempotency_key": idempotency_key,
            "request_fingerprint": fingerprint,
            "campaign_id": data.campaign_id,
            "tier_id": data.tier_id,
            "terms_version": data.tier_version,
            "funding_model": FundingModel(campaign.funding_model),
            "currency": campaign.currency,
            "total_amount": data.amount,
            "tier_price_amount": version.price_amount,
            "shipping_amount": shipping,
            "bonus_amount": data.amount - version.price_amount - shipping,
            "shipping_region": data.shipping_region,
            "payment_method_input": data.payment_method,
            "status": PledgeStatus.RESERVING,
            "reservation_state": ReservationState.NONE,
            # The Stripe idempotency keys are on the row before any call is made.
            "customer_key": f"pledge:{pledge_id}:customer" if aon else None,
            "setup_intent_key": f"pledge:{pledge_id}:setup_intent" if aon else None,
            "payment_intent_key": None if aon else f"pledge:{pledge_id}:payment_intent",
            "payment_method_detached": False,
            "payment_method_version": 1,
            "charged_amount": 0,
            "refunded_amount": 0,
            "disputed": False,
            "charge_attempts": 0,
            "consent_status": ConsentStatus.NONE,
            "lease_token": token,
            "lease_until": now + timedelta(seconds=runtime.settings.saga_lease_seconds),
            "created_at": now,
            "updated_at": now,
        }
        full = runtime.campaigns.remembered_refusal(data.campaign_id, data.tier_id, data.amount)
        if full is not None:
            # Campaigns refused a pledge no smaller a moment ago (cap reached, tier sold out): this one is
            # stored rejected with that refusal, as the saga would after asking; no call, nothing held.
            values |= {
                "status": PledgeStatus.REJECTED,
                "failure_code": full.code,
                "failure_status": full.status if full.status in (404, 409, 422) else 409,
                "failure_detail": (full.detail or "")[:500] or None,
                "failure_extra": dict(full.extra) or None,
                "lease_token": None,
                "lease_until": None,
            }
        terms_values = {
            "id": uuid.uuid4(),
            "pledge_id": pledge_id,
            "version": version.version,
            "content_hash": version.content_hash,
            "content": version.content,
            "accepted_at": now,
        }
        async with runtime.db.one_statement() as conn:
            inserted = await insert_pledge(conn, values, terms_values)
        if not inserted:  # a concurrent request with the same key won the insert
            existing = await self._existing(runtime, backer_id, idempotency_key)
            assert existing is not None
            return await self._replay(runtime, existing, fingerprint)
        if full is not None:
            log.info("pledge.rejected", pledge_id=str(pledge_id), code=full.code, remembered=True)
        else:
            log.info("pledge.created", pledge_id=str(pledge_id), campaign_id=str(data.campaign_id))
        return Pledge(**values), PledgeTerms(**terms_values)

    async def _existing(self, runtime: Runtime, backer_id: str, key: str) -> Pledge | None:
        async with runtime.db.read_sessions() as session:
            return await PledgeRepository(session).by_key(backer_id, key)

    async def _replay(self, runtime: Runtime, pledge: Pledge, fingerprint: str) -> schemas.Pledge:
        if pledge.request_fingerprint != fingerprint:
            raise exceptions.IdempotencyKeyReused()
        if pledge.status in IN_PROGRESS:
            claimed = await self._claim(runtime, pledge.id, IN_PROGRESS)
            if claimed is None:
                raise exceptions.PledgeInProgress()
            pledge = await self._drive(runtime, claimed)
        return await self._outcome(runtime, pledge)

    async def _claim(
        self,
        runtime: Runtime,
        pledge_id: uuid.UUID,
        statuses: frozenset[PledgeStatus] | set[PledgeStatus],
        values: dict[str, Any] | None = None,
    ) -> Pledge | None:
        return await PledgeSaga(runtime).claim(pledge_id, statuses, values)

    async def drive_claimed(self, runtime: Runtime, pledge: Pledge) -> Pledge:
        """Drive a pledge whose lease the caller holds (503 / 409 problems when it cannot finish now)."""
        return await self._drive(runtime, pledge)

    async def _drive(self, runtime: Runtime, pledge: Pledge, saga: PledgeSaga | None = None) -> Pledge:
        saga = saga or PledgeSaga(runtime)
        try:
            return await saga.drive(pledge)
        except StepUnavailable as exc:
            await saga.release_lease(pledge)
            log.warning("pledge.step_unavailable", pledge_id=str(pledge.id), upstream=exc.upstream)
            raise exceptions.PledgePending(str(pledge.id)) from exc
        except LeaseLost as exc:
            raise exceptions.PledgeInProgress() from exc
        except Exception:
            # Unexpected: leave the pledge where it is for the sweeper (after a pause), and answer 500.
            await saga.release_lease(pledge, retry_in=runtime.settings.saga_lease_seconds)
            raise

    async def _outcome(
        self, runtime: Runtime, pledge: Pledge, terms: Sequence[PledgeTerms] | None = None
    ) -> schemas.Pledge:
        if pledge.status in (PledgeStatus.REJECTED, PledgeStatus.DECLINED, PledgeStatus.FAILED):
            raise refusal_of(pledge)
        return await self.load_presented(runtime, pledge, terms=terms)

    async def load_presented(
        self, runtime: Runtime, pledge: Pledge, terms: Sequence[PledgeTerms] | None = None
    ) -> schemas.Pledge:
        async with runtime.db.read_sessions() as session:
            return await self.present_from(session, pledge, terms=terms)

    async def present_from(
        self, session: AsyncSession, pledge: Pledge, terms: Sequence[PledgeTerms] | None = None
    ) -> schemas.Pledge:
        repository = PledgeRepository(session)
        if terms is None:
            terms = await repository.terms(pledge.id)
        payments = await repository.payments(pledge.id)
        refunds = await repository.refunds(pledge.id) if pledge.charged_amount else []
        return present(pledge, terms, payments, refunds)

    # -- reads ------------------------------------------------------------------------------------------

    async def visible(self, runtime: Runtime, principal: Principal, pledge: Pledge) -> bool:
        """The backer who made it, the campaign's creator, operators. Nobody else."""
        if principal.is_operator:
            return True
        if principal.has(Role.BACKER) and pledge.backer_id == principal.subject:
            return True
        if principal.has(Role.CREATOR):
            campaign = await self._campaign(runtime, pledge.campaign_id)
            return campaign.creator_id == principal.subject
        return False

    async def get(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, pledge_id: uuid.UUID
    ) -> schemas.Pledge:
        pledge = await PledgeRepository(session).get(pledge_id)
        if pledge is None or not await self.visible(runtime, principal, pledge):
            raise exceptions.PledgeNotFound()
        return await self.present_from(session, pledge)

    async def list_mine(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        campaign_id: uuid.UUID | None,
        status: PledgeStatus | None,
        cursor: str | None,
        limit: int,
    ) -> schemas.PledgePage:
        statement = select(Pledge).where(Pledge.backer_id == principal.subject)
        if campaign_id is not None:
            statement = statement.where(Pledge.campaign_id == campaign_id)
        if status is not None:
            statement = statement.where(Pledge.status == status)
        return await self._page(session, statement, cursor, limit)

    async def list_for_campaign(
        self,
        runtime: Runtime,
        session: AsyncSession,
        principal: Principal,
        campaign_id: uuid.UUID,
        *,
        tier_id: uuid.UUID | None,
        status: PledgeStatus | None,
        cursor: str | None,
        limit: int,
    ) -> schemas.PledgePage:
        await self.require_campaign_reader(runtime, principal, campaign_id)
        statement = select(Pledge).where(Pledge.campaign_id == campaign_id)
        if tier_id is not None:
            statement = statement.where(Pledge.tier_id == tier_id)
        if status is not None:
            statement = statement.where(Pledge.status == status)
        return await self._page(session, statement, cursor, limit)

    async def require_campaign_reader(self, runtime: Runtime, principal: Principal, campaign_id: uuid.UUID) -> None:
        if principal.is_operator:
            return
        if not principal.has(Role.CREATOR):
            raise exceptions.NotCampaignCreator()
        campaign = await self._campaign(runtime, campaign_id)
        if campaign.creator_id != principal.subject:
            raise exceptions.NotCampaignCreator()

    async def _page(self, session: AsyncSession, statement: Any, cursor: str | None, limit: int) -> schemas.PledgePage:
        repository = PledgeRepository(session)
        rows = list(await repository.get_all(repository.page(statement, after=decode_cursor(cursor), limit=limit)))
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
        return schemas.PledgePage(items=[present_summary(p) for p in rows], next_cursor=next_cursor)

    async def reconciliation(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, campaign_id: uuid.UUID
    ) -> schemas.Reconciliation:
        await self.require_campaign_reader(runtime, principal, campaign_id)
        sums = await PledgeRepository(session).reconciliation(campaign_id)
        try:
            totals = await runtime.campaigns.totals(campaign_id)
        except CampaignsUnavailable as exc:
            raise exceptions.UpstreamUnavailable("campaigns service") from exc
        except CampaignRefusal as exc:
            raise exceptions.CampaignNotVisible() from exc
        confirmed_count, confirmed_amount = sums.get(ReservationState.CONFIRMED, (0, 0))
        pending_count, pending_amount = sums.get(ReservationState.PENDING, (0, 0))
        return schemas.Reconciliation(
            campaign_id=campaign_id,
            confirmed_pledges_amount=confirmed_amount,
            confirmed_pledges_count=confirmed_count,
            pending_pledges_amount=pending_amount,
            pending_pledges_count=pending_count,
            campaign_committed_amount=totals.committed_amount,
            campaign_confirmed_sum_amount=totals.confirmed_sum_amount,
            campaign_confirmed_count=totals.confirmed_count,
            campaign_pending_sum_amount=totals.pending_sum_amount,
            consistent=(
                totals.consistent
                and confirmed_amount == totals.committed_amount == totals.confirmed_sum_amount
                and confirmed_count == totals.confirmed_count
                and pending_amount == totals.pending_sum_amount
            ),
        )

    # -- the backer's actions -------------------------------------------------------------------------------

    async def _own(self, runtime: Runtime, principal: Principal, pledge_id: uuid.UUID) -> Pledge:
        async with runtime.db.read_sessions() as session:
            pledge = await PledgeRepository(session).get(pledge_id)
        if pledge is None or pledge.backer_id != principal.subject:
            raise exceptions.PledgeNotFound()
        return pledge

    async def start_compensation(
        self,
        runtime: Runtime,
        pledge_id: uuid.UUID,
        *,
        allowed: set[PledgeStatus],
        reason: str,
        extra: dict[str, Any] | None = None,
    ) -> Pledge | None:
        """Take the pledge and turn it towards ``canceled`` (refund if charged, detach the card, release)."""
        values = {
            "status": PledgeStatus.COMPENSATING,
            "final_status": PledgeStatus.CANCELED,
            "cancel_reason": reason[:200],
            **(extra or {}),
        }
        return await self._claim(runtime, pledge_id, allowed, values=values)

    async def cancel(self, runtime: Runtime, principal: Principal, pledge_id: uuid.UUID) -> tuple[schemas.Pledge, bool]:
        """The backer cancels before the deadline: capacity released, card forgotten, a payment refunded
        (through the refunds service). Returns (pledge, finished): not finished when an upstream is down - the
        cancel is taken (the pledge is ``compensating``) and the sweeper completes it."""
        pledge = await self._own(runtime, principal, pledge_id)
        if pledge.status is PledgeStatus.CANCELED:
            return await self.load_presented(runtime, pledge), True
        if self._backer_compensation_underway(pledge, CANCELED_BY_BACKER):
            return await self._resume_compensation(runtime, pledge)
        if pledge.status not in (PledgeStatus.ACTIVE, PledgeStatus.COLLECTED):
            raise exceptions.PledgeNotCancelable(f"A pledge that is {pledge.status.value} cannot be canceled.")
        campaign = await self._campaign(runtime, pledge.campaign_id, fresh=True)
        if not campaign.accepts_pledges:
            raise exceptions.PledgeNotCancelable(
                "The campaign's deadline has passed: pledges can no longer be canceled."
            )
        claimed = await self.start_compensation(
            runtime, pledge.id, allowed={PledgeStatus.ACTIVE, PledgeStatus.COLLECTED}, reason=CANCELED_BY_BACKER
        )
        if claimed is None:
            raise exceptions.PledgeInProgress()
        return await self._compensate_accepting(runtime, claimed)

    async def withdraw(
        self, runtime: Runtime, principal: Principal, pledge_id: uuid.UUID
    ) -> tuple[schemas.Pledge, bool]:
        """After a material change of terms: leave the pledge (canceled; a charged pledge is refunded in full,
        through the refunds service). Returns (pledge, finished) as ``cancel`` does."""
        pledge = await self._own(runtime, principal, pledge_id)
        if pledge.status is PledgeStatus.CANCELED and pledge.consent_status is ConsentStatus.WITHDRAWN:
            return await self.load_presented(runtime, pledge), True
        if self._backer_compensation_underway(pledge, WITHDRAWN_AFTER_TERMS_CHANGE):
            return await self._resume_compensation(runtime, pledge)
        self._require_open_consent(pledge)
        claimed = await self.start_compensation(
            runtime,
            pledge.id,
            allowed={PledgeStatus.ACTIVE, PledgeStatus.COLLECTED, PledgeStatus.PAYMENT_FAILED},
            reason=WITHDRAWN_AFTER_TERMS_CHANGE,
            extra={"consent_status": ConsentStatus.WITHDRAWN},
        )
        if claimed is None:
            raise exceptions.PledgeInProgress()
        return await self._compensate_accepting(runtime, claimed)

    @staticmethod
    def _backer_compensation_underway(pledge: Pledge, reason: str) -> bool:
        return pledge.status is PledgeStatus.COMPENSATING and pledge.cancel_reason == reason

    async def _resume_compensation(self, runtime: Runtime, pledge: Pledge) -> tuple[schemas.Pledge, bool]:
        """Asked again while the cancel is still underway: drive it if nobody holds it, else show where it is."""
        claimed = await self._claim(runtime, pledge.id, {PledgeStatus.COMPENSATING})
        if claimed is None:
            return await self.load_presented(runtime, pledge), False
        return await self._compensate_accepting(runtime, claimed)

    async def _compensate_accepting(self, runtime: Runtime, claimed: Pledge) -> tuple[schemas.Pledge, bool]:
        """Drive a backer's cancel; an unavailable upstream leaves it taken (``compensating``) for the sweeper."""
        try:
            pledge = await self._drive(runtime, claimed)
        except exceptions.PledgePending:
            log.info("pledge.cancel_accepted", pledge_id=str(claimed.id))
            return await self.load_presented(runtime, claimed), False
        return await self.load_presented(runtime, pledge), True

    @staticmethod
    def _require_open_consent(pledge: Pledge) -> None:
        if pledge.consent_status is not ConsentStatus.REQUESTED:
            raise exceptions.NoConsentRequested()
        if pledge.consent_deadline_at is not None and pledge.consent_deadline_at <= utcnow():
            raise exceptions.NoConsentRequested("The window to answer this change of terms has closed.")

    async def accept_terms(
        self, runtime: Runtime, session: AsyncSession, principal: Principal, pledge_id: uuid.UUID, version: int
    ) -> schemas.Pledge:
        """Take the new terms (a new snapshot beside the earlier ones). ``session`` is the request's write unit of
        work: its transaction begins at its first statement, after the campaigns call."""
        pledge = await self._own(runtime, principal, pledge_id)
        if pledge.consent_status is ConsentStatus.ACCEPTED and pledge.terms_version == version:
            return await self.load_presented(runtime, pledge)
        self._require_open_consent(pledge)
        if pledge.consent_version != version:
            raise exceptions.NoConsentRequested(
                f"The terms awaiting your decision are version {pledge.consent_version}."
            )
        if pledge.status in FINAL:
            raise exceptions.PledgeNotModifiable(f"A pledge that is {pledge.status.value} cannot accept new terms.")
        try:
            terms = await runtime.campaigns.tier_version(pledge.campaign_id, pledge.tier_id, version)
        except CampaignsUnavailable as exc:
            raise exceptions.UpstreamUnavailable("campaigns service") from exc
        except CampaignRefusal as exc:
            raise exceptions.TierVersionNotFound() from exc
        shipping = terms.shipping_amount(pledge.shipping_region)
        if shipping is None or pledge.total_amount < terms.price_amount + shipping:
            raise exceptions.PledgeNotModifiable(
                "The pledge's amount does not cover the new terms (price or shipping); withdraw instead."
            )
        now = utcnow()
        repository = PledgeRepository(session)
        current = await repository.locked(pledge.id)
        if (
            current is None
            or current.consent_status is not ConsentStatus.REQUESTED
            or current.consent_version != version
        ):
            raise exceptions.NoConsentRequested()
        current.terms_version = version
        current.tier_price_amount = terms.price_amount
        current.shipping_amount = shipping
        current.bonus_amount = current.total_amount - terms.price_amount - shipping
        current.consent_status = ConsentStatus.ACCEPTED
        current.updated_at = now
        await repository.add_terms(
            PledgeTerms(
                id=uuid.uuid4(),
                pledge_id=pledge.id,
                version=version,
                content_hash=terms.content_hash,
                content=terms.content,
                accepted_at=now,
            )
        )
        await session.flush()  # the answer reads the new snapshot back; the route's unit of work commits it
        log.info("pledge.terms_accepted", pledge_id=str(pledge.id), version=version)
        return await self.present_from(session, current)

    async def update_payment_method(
        self, runtime: Runtime, principal: Principal, pledge_id: uuid.UUID, payment_method: str
    ) -> schemas.Pledge:
        """Save a new card on an all-or-nothing pledge (a SetupIntent on the pledge's customer). After a failed
        charge, the pledge is charged again at once with the new card."""
        pledge = await self._own(runtime, principal, pledge_id)
        if pledge.funding_model is not FundingModel.ALL_OR_NOTHING or pledge.status not in (
            PledgeStatus.ACTIVE,
            PledgeStatus.PAYMENT_FAILED,
        ):
            raise exceptions.PledgeNotModifiable(
                "Only a saved card of an all-or-nothing pledge awaiting its charge can change."
            )
        version = pledge.payment_method_version + 1
        key = f"pledge:{pledge.id}:setup_intent:{version}"
        claimed = await self._claim(
            runtime,
            pledge.id,
            {PledgeStatus.ACTIVE, PledgeStatus.PAYMENT_FAILED},
            values={"payment_method_version": version, "setup_intent_key": key},
        )
        if claimed is None or claimed.payment_method_version != version:
            raise exceptions.PledgeInProgress()
        assert claimed.stripe_customer_id
        saga = PledgeSaga(runtime)
        try:
            result = await runtime.stripe.setup_card(
                ref(claimed), customer_id=claimed.stripe_customer_id, key=key, payment_method=payment_method
            )
        except PaymentProviderUnavailable as exc:
            await saga.release_lease(claimed)
            raise exceptions.UpstreamUnavailable("payment provider") from exc
        if isinstance(result, Declined):
            await saga.release_lease(claimed)
            raise exceptions.PaymentMethodDeclined(
                result.message, extra={"decline_code": result.decline_code, "pledge_id": str(claimed.id)}
            )
        previous = claimed.stripe_payment_method_id
        values: dict[str, Any] = {
            "stripe_setup_intent_id": result.setup_intent_id,
            "stripe_payment_method_id": result.payment_method_id,
            "payment_method_detached": False,
        }
        if claimed.status is PledgeStatus.PAYMENT_FAILED:
            values["charge_due_at"] = utcnow()
        await saga._commit(
            claimed,
            values,
            finish=True,
            payment={
                "kind": PaymentKind.CARD_SAVED,
                "stripe_id": result.setup_intent_id,
                "idempotency_key": key,
                "amount": 0,
                "status": "succeeded",
            },
        )
        if previous and previous != result.payment_method_id:
            try:
                await runtime.stripe.detach_payment_method(previous)
            except PaymentProviderUnavailable:
                log.warning("pledge.old_card_not_detached", pledge_id=str(claimed.id))
        return await self.load_presented(runtime, claimed)


pledge_service = PledgeService()
