"""The pledge saga, persisted step by step.

All or nothing (the card is saved now, charged if the campaign succeeds):

    reserving ──save card, then reserve+commit──► active
        │ declined            │ refused
        ▼                     ▼
     declined           compensating ──detach card──► rejected

Flexible (charged now):

    reserving ──reserve, then charge──► confirming ──confirm──► collected
        │ refused              │ declined              │ refused
        ▼                      ▼                       ▼
     rejected            compensating ───refund / detach card / release───► declined | failed | canceled | dropped

    active ──(campaign succeeded)──► charging ──off-session charge──► collected | payment_failed

Each step commits its outcome on the pledge row (a compare-and-set on the status and the driver's lease
token) before the next step; no database transaction is open while a call is in flight. Every call is
idempotent — the campaigns service keys reservations by pledge id, and every Stripe write carries a key
derived from the pledge and stored on the row before the call — so whoever resumes a pledge (a retried
request, the sweeper after a crash) repeats the current step and gets the first answers.

The first step makes two calls and one write. An all-or-nothing pledge saves the card first and then asks
campaigns to hold and commit its capacity in one call (``confirmed``): the capacity is committed only for a
saved card, a refusal after saving costs a detach, and a Stripe outage holds nothing. A flexible pledge holds
capacity before charging (a refusal must never follow a charge) and confirms after it. `authorizing`, and an
all-or-nothing pledge in `confirming`, are where pledges written before these changes may still be; they
resume with the payment and the confirm.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, ClassVar

import structlog

from services.pledges.clients.campaigns import CampaignRefusal, CampaignsUnavailable, Reservation
from services.pledges.clients.refunds import RefundsUnavailable
from services.pledges.models import (
    FundingModel,
    PaymentKind,
    Pledge,
    PledgePayment,
    PledgeRefund,
    PledgeStatus,
    RefundStatus,
    ReservationState,
)
from services.pledges.payments.stripe_gateway import (
    CardSaved,
    Charged,
    Declined,
    PaymentProviderUnavailable,
    PledgeRef,
)
from services.pledges.pledges.repository import (
    PledgeRepository,
    RefundRepository,
    compare_and_set,
    refresh_refund_totals,
)
from services.pledges.runtime import Runtime
from shared.db import utcnow

log = structlog.get_logger("pledges.saga")

REFUND_STATUS_VALUES = frozenset(s.value for s in RefundStatus)

# Our own refund of a pledge (cancel before the deadline, compensation) has an id derived from the pledge, so
# the refund history row and the Stripe idempotency key are the same on every replay.
REFUND_NAMESPACE = uuid.UUID("6f1c3a52-8d0e-4c59-9a57-2f3e1f0b7d11")

CANCELED_BY_BACKER = "canceled_by_backer"
WITHDRAWN_AFTER_TERMS_CHANGE = "withdrawn_after_terms_change"
BACKER_CANCEL_REASONS = frozenset({CANCELED_BY_BACKER, WITHDRAWN_AFTER_TERMS_CHANGE})
# A refund item's status at the refunds service, as this pledge's history shows it (queued: not sent yet).
REFUNDS_ITEM_STATUS = {
    "queued": RefundStatus.PENDING,
    "pending": RefundStatus.PENDING,
    "succeeded": RefundStatus.SUCCEEDED,
    "failed": RefundStatus.FAILED,
    "canceled": RefundStatus.CANCELED,
}


class LeaseLost(Exception):
    """Another driver took the pledge over (our lease expired); stop without touching it."""


class StepUnavailable(Exception):
    """An upstream (campaigns or Stripe) is unavailable: the pledge stays where it is, to be resumed."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self.upstream = upstream


def compensation_refund_id(pledge_id: uuid.UUID) -> uuid.UUID:
    return uuid.uuid5(REFUND_NAMESPACE, f"pledge:{pledge_id}:refund")


def backer_refund_reason(pledge: Pledge) -> str | None:
    """The backer's own reason when this compensation is their cancel or withdrawal (refunded through the
    refunds service); None for the saga's own compensations (refunded directly)."""
    if pledge.final_status is PledgeStatus.CANCELED and pledge.cancel_reason in BACKER_CANCEL_REASONS:
        return pledge.cancel_reason
    return None


def ref(pledge: Pledge) -> PledgeRef:
    return PledgeRef(pledge_id=str(pledge.id), campaign_id=str(pledge.campaign_id))


class PledgeSaga:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.lease = timedelta(seconds=runtime.settings.saga_lease_seconds)
        # Payment history rows this driver wrote (to answer a fresh pledge without reading them back).
        self.payments_recorded: list[PledgePayment] = []

    # -- persistence --------------------------------------------------------------------------------------

    async def _commit(
        self,
        pledge: Pledge,
        values: dict[str, Any],
        *,
        finish: bool = False,
        payment: dict[str, Any] | None = None,
        refund: dict[str, Any] | None = None,
    ) -> None:
        """Apply a step's outcome: compare-and-set on (status, lease token), in one short transaction."""
        now = utcnow()
        values = {**values, "updated_at": now}
        if finish:
            values |= {"lease_token": None, "lease_until": None}
        else:
            values["lease_until"] = now + self.lease
        payment_row = None
        if payment is not None:
            payment_row = {
                "id": uuid.uuid4(),
                "pledge_id": pledge.id,
                "currency": pledge.currency,
                "created_at": now,
                "updated_at": now,
                "decline_code": None,
                "stripe_event_at": None,
                **payment,
            }
        if refund is None:
            async with self.runtime.db.one_statement() as conn:
                if not await compare_and_set(
                    conn,
                    pledge.id,
                    token=pledge.lease_token,
                    expected=pledge.status,
                    values=values,
                    payment=payment_row,
                ):
                    raise LeaseLost(str(pledge.id))
        else:
            async with self.runtime.db.write_sessions() as session:
                repository = PledgeRepository(session)
                if not await repository.compare_and_set(
                    pledge.id, token=pledge.lease_token, expected=pledge.status, values=values
                ):
                    await session.rollback()
                    raise LeaseLost(str(pledge.id))
                existing = await RefundRepository(session).for_update(refund["id"])
                if existing is None:
                    session.add(PledgeRefund(pledge_id=pledge.id, created_at=now, updated_at=now, **refund))
                    await session.flush()
                current = await repository.locked(pledge.id)
                assert current is not None
                await refresh_refund_totals(session, current)
                values["refunded_amount"] = current.refunded_amount
                await session.commit()
        if payment_row is not None:
            self.payments_recorded.append(PledgePayment(**payment_row))
        for key, value in values.items():
            setattr(pledge, key, value)

    async def claim(
        self,
        pledge_id: uuid.UUID,
        statuses: frozenset[PledgeStatus] | set[PledgeStatus],
        values: dict[str, Any] | None = None,
    ) -> Pledge | None:
        """Take the pledge's lease (if it is in one of ``statuses`` and its lease is free), applying ``values``;
        None if somebody else holds it or it moved on."""
        async with self.runtime.db.write_sessions() as session:
            repository = PledgeRepository(session)
            claimed = await repository.claim(
                pledge_id, statuses=statuses, token=uuid.uuid4(), now=utcnow(), lease=self.lease, values=values
            )
            if not claimed:
                return None
            pledge = await repository.fresh(pledge_id)
            await session.commit()
        return pledge

    async def release_lease(self, pledge: Pledge, *, retry_in: float = 0.0) -> None:
        """Give the pledge back (after an upstream failure) so a retry or the sweeper resumes it."""
        now = utcnow()
        async with self.runtime.db.one_statement() as conn:
            await compare_and_set(
                conn,
                pledge.id,
                token=pledge.lease_token,
                expected=pledge.status,
                values={"lease_until": now + timedelta(seconds=retry_in), "updated_at": now},
            )

    # -- driving ------------------------------------------------------------------------------------------

    async def drive(self, pledge: Pledge) -> Pledge:
        """Run steps until the pledge is standing or final. The caller holds the lease."""
        while pledge.status in self._steps:
            await self.step(pledge)
        return pledge

    async def step(self, pledge: Pledge) -> None:
        await self._steps[pledge.status](self, pledge)

    async def _reserve(self, pledge: Pledge) -> None:
        if pledge.funding_model is FundingModel.ALL_OR_NOTHING:
            await self._save_card_then_reserve(pledge)
            return
        try:
            reservation = await self._reserve_call(pledge, confirmed=False)
        except CampaignRefusal as refusal:
            await self._commit(pledge, await self._rejection(pledge, refusal), finish=True)
            return
        if reservation.status in ("pending", "confirmed"):
            # Straight on to the payment, whose outcome is written with the reservation's state. Not written on
            # its own: the reservation is keyed by the pledge id, so a driver resuming from `reserving` (after
            # a crash, or Stripe unavailable) gets this reservation back, not a second one (one statement
            # fewer per pledge; a pledge left `reserving` holds nothing campaigns does not expire).
            await self._authorize(pledge, reservation_state=ReservationState(reservation.status))
            return
        # A replay found the reservation expired or released: nothing is held, nothing was paid yet.
        await self._commit(pledge, {**self._lapsed(reservation.status), "status": PledgeStatus.FAILED}, finish=True)

    async def _save_card_then_reserve(self, pledge: Pledge) -> None:
        """All or nothing: save the card, then hold and commit the capacity in one call to campaigns; one
        write of the outcome. Nothing is written in between: the card is saved under keys stored on the row,
        and the reservation is keyed by the pledge id, so a driver resuming from `reserving` gets the same
        card and the same reservation back. A refusal after the card was saved forgets the card
        (`compensating`, then `rejected`); a decline holds nothing and ends the pledge at once."""
        try:
            result = await self._save_card(pledge)
        except PaymentProviderUnavailable as exc:
            raise StepUnavailable("payment provider") from exc
        if isinstance(result, Declined):
            log.info("pledge.declined", pledge_id=str(pledge.id), decline_code=result.decline_code)
            await self._commit(
                pledge, self._declined(result), finish=True, payment=self._declined_payment(pledge, result)
            )
            return
        card, saved = self._card(result), self._card_saved_payment(pledge, result)
        try:
            reservation = await self._reserve_call(pledge, confirmed=True)
        except CampaignRefusal as refusal:
            rejection = await self._rejection(pledge, refusal)
            rejected = {**rejection, "status": PledgeStatus.COMPENSATING, "final_status": PledgeStatus.REJECTED}
            await self._commit(pledge, {**rejected, **card}, payment=saved)
            return
        if reservation.status == "confirmed":
            values = {"status": PledgeStatus.ACTIVE, "reservation_state": ReservationState.CONFIRMED, **card}
            await self._commit(pledge, values, finish=True, payment=saved)
            log.info("pledge.accepted", pledge_id=str(pledge.id), status=PledgeStatus.ACTIVE.value)
        elif reservation.status == "pending":  # not expected of campaigns: confirm it as a separate step
            values = {"status": PledgeStatus.CONFIRMING, "reservation_state": ReservationState.PENDING, **card}
            await self._commit(pledge, values, payment=saved)
        else:  # a pending reservation made earlier lapsed: nothing is held; forget the card
            lapsed = {
                **self._lapsed(reservation.status),
                "status": PledgeStatus.COMPENSATING,
                "final_status": PledgeStatus.FAILED,
            }
            await self._commit(pledge, {**lapsed, **card}, payment=saved)

    async def _reserve_call(self, pledge: Pledge, *, confirmed: bool) -> Reservation:
        try:
            return await self.runtime.campaigns.reserve(
                pledge_id=pledge.id,
                campaign_id=pledge.campaign_id,
                tier_id=pledge.tier_id,
                tier_version=pledge.terms_version,
                backer_id=pledge.backer_id,
                amount=pledge.total_amount,
                currency=pledge.currency,
                shipping_region=pledge.shipping_region,
                confirmed=confirmed,
            )
        except CampaignsUnavailable as exc:
            raise StepUnavailable("campaigns service") from exc

    async def _rejection(self, pledge: Pledge, refusal: CampaignRefusal) -> dict[str, Any]:
        """The pledge's values for a refusal of its reservation (status `rejected`)."""
        extra = dict(refusal.extra)
        if refusal.code == "terms_changed" and isinstance(extra.get("current_version"), int):
            extra["current_terms"] = await self._current_terms(pledge, extra["current_version"])
        status = refusal.status if refusal.status in (404, 409, 422) else 409
        log.info("pledge.rejected", pledge_id=str(pledge.id), code=refusal.code)
        return {
            "status": PledgeStatus.REJECTED,
            "failure_code": refusal.code,
            "failure_status": status,
            "failure_detail": (refusal.detail or "")[:500] or None,
            "failure_extra": extra or None,
        }

    @staticmethod
    def _lapsed(reservation_status: str) -> dict[str, Any]:
        return {
            "failure_code": f"reservation_{reservation_status}",
            "failure_status": 409,
            "failure_detail": "The capacity held for this pledge lapsed before payment.",
            "reservation_state": ReservationState.RELEASED,
        }

    @staticmethod
    def _declined(result: Declined) -> dict[str, Any]:
        return {
            "status": PledgeStatus.DECLINED,
            "failure_code": "payment_declined",
            "failure_status": 402,
            "failure_detail": result.message[:500],
            "failure_extra": {"stripe_code": result.code},
            "decline_code": result.decline_code,
        }

    async def _current_terms(self, pledge: Pledge, version: int) -> dict[str, Any] | None:
        try:
            current = await self.runtime.campaigns.tier_version(pledge.campaign_id, pledge.tier_id, version)
        except (CampaignsUnavailable, CampaignRefusal):
            return None
        return {"version": current.version, "content_hash": current.content_hash, "content": current.content}

    async def _authorize(self, pledge: Pledge, reservation_state: ReservationState | None = None) -> None:
        """Take the payment (save the card, or charge). ``reservation_state``: the reservation just made, when
        called by ``_reserve`` (written with the outcome); None when resuming a pledge left `authorizing`."""
        stripe = self.runtime.stripe
        held = {"reservation_state": reservation_state} if reservation_state is not None else {}
        assert pledge.payment_method_input
        try:
            if pledge.funding_model is FundingModel.ALL_OR_NOTHING:
                result: CardSaved | Charged | Declined = await self._save_card(pledge)
            else:
                assert pledge.payment_intent_key
                result = await stripe.charge(
                    ref(pledge),
                    key=pledge.payment_intent_key,
                    amount=pledge.total_amount,
                    currency=pledge.currency,
                    payment_method=pledge.payment_method_input,
                )
        except PaymentProviderUnavailable as exc:
            raise StepUnavailable("payment provider") from exc
        now = utcnow()
        if isinstance(result, Declined):
            log.info("pledge.declined", pledge_id=str(pledge.id), decline_code=result.decline_code)
            declined = {**self._declined(result), "status": PledgeStatus.COMPENSATING}
            await self._commit(
                pledge,
                {**held, **declined, "final_status": PledgeStatus.DECLINED},
                payment=self._declined_payment(pledge, result),
            )
        elif isinstance(result, CardSaved):
            await self._commit(
                pledge,
                {**held, "status": PledgeStatus.CONFIRMING, **self._card(result)},
                payment=self._card_saved_payment(pledge, result),
            )
        else:
            await self._commit(
                pledge,
                {
                    **held,
                    "status": PledgeStatus.CONFIRMING,
                    "stripe_payment_intent_id": result.payment_intent_id,
                    "stripe_payment_method_id": result.payment_method_id,
                    "charged_amount": result.amount,
                    "charged_at": now,
                },
                payment={
                    "kind": PaymentKind.CHARGE,
                    "stripe_id": result.payment_intent_id,
                    "idempotency_key": pledge.payment_intent_key,
                    "amount": result.amount,
                    "status": "succeeded",
                },
            )

    async def _save_card(self, pledge: Pledge) -> CardSaved | Declined:
        """A Customer and a confirmed off-session SetupIntent, under the keys stored on the row."""
        assert pledge.customer_key
        assert pledge.setup_intent_key
        assert pledge.payment_method_input
        return await self.runtime.stripe.save_card(
            ref(pledge),
            customer_key=pledge.customer_key,
            setup_intent_key=pledge.setup_intent_key,
            payment_method=pledge.payment_method_input,
        )

    @staticmethod
    def _card(result: CardSaved) -> dict[str, Any]:
        return {
            "stripe_customer_id": result.customer_id,
            "stripe_setup_intent_id": result.setup_intent_id,
            "stripe_payment_method_id": result.payment_method_id,
        }

    @staticmethod
    def _card_saved_payment(pledge: Pledge, result: CardSaved) -> dict[str, Any]:
        return {
            "kind": PaymentKind.CARD_SAVED,
            "stripe_id": result.setup_intent_id,
            "idempotency_key": pledge.setup_intent_key,
            "amount": 0,
            "status": "succeeded",
        }

    @staticmethod
    def _declined_payment(pledge: Pledge, result: Declined) -> dict[str, Any] | None:
        if not result.intent_id:
            return None
        setup = result.intent_id.startswith("seti_")
        return {
            "kind": PaymentKind.CARD_SAVED if setup else PaymentKind.CHARGE,
            "stripe_id": result.intent_id,
            "idempotency_key": (pledge.setup_intent_key if setup else pledge.payment_intent_key) or "",
            "amount": 0 if setup else pledge.total_amount,
            "status": "declined",
            "decline_code": result.decline_code,
        }

    async def _confirm(self, pledge: Pledge) -> None:
        try:
            await self.runtime.campaigns.confirm(pledge.campaign_id, pledge.id)
        except CampaignsUnavailable as exc:
            raise StepUnavailable("campaigns service") from exc
        except CampaignRefusal as refusal:
            # Paid (or card saved) but the campaign will not count it: undo the payment, then release.
            log.warning("pledge.confirm_refused", pledge_id=str(pledge.id), code=refusal.code)
            await self._commit(
                pledge,
                {
                    "status": PledgeStatus.COMPENSATING,
                    "final_status": PledgeStatus.FAILED,
                    "failure_code": refusal.code,
                    "failure_status": 409,
                    "failure_detail": (refusal.detail or "")[:500] or None,
                },
            )
            return
        status = PledgeStatus.COLLECTED if pledge.charged_amount > 0 else PledgeStatus.ACTIVE
        await self._commit(pledge, {"status": status, "reservation_state": ReservationState.CONFIRMED}, finish=True)
        log.info("pledge.accepted", pledge_id=str(pledge.id), status=status.value)

    async def _charge(self, pledge: Pledge) -> None:
        """Charge run: an off-session PaymentIntent with the saved card, keyed by the attempt number."""
        assert pledge.payment_intent_key
        assert pledge.stripe_payment_method_id
        settings = self.runtime.settings
        try:
            result = await self.runtime.stripe.charge(
                ref(pledge),
                key=pledge.payment_intent_key,
                amount=pledge.total_amount,
                currency=pledge.currency,
                payment_method=pledge.stripe_payment_method_id,
                customer_id=pledge.stripe_customer_id,
                off_session=True,
            )
        except PaymentProviderUnavailable as exc:
            raise StepUnavailable("payment provider") from exc
        now = utcnow()
        if isinstance(result, Charged):
            await self._commit(
                pledge,
                {
                    "status": PledgeStatus.COLLECTED,
                    "stripe_payment_intent_id": result.payment_intent_id,
                    "charged_amount": result.amount,
                    "charged_at": now,
                    "charge_due_at": None,
                    "grace_until": None,
                    "decline_code": None,
                    "failure_code": None,
                    "failure_detail": None,
                },
                finish=True,
                payment={
                    "kind": PaymentKind.CHARGE,
                    "stripe_id": result.payment_intent_id,
                    "idempotency_key": pledge.payment_intent_key,
                    "amount": result.amount,
                    "status": "succeeded",
                },
            )
            log.info("pledge.charged", pledge_id=str(pledge.id), attempt=pledge.charge_attempts)
            return
        grace_until = pledge.grace_until or now + timedelta(seconds=settings.grace_period_seconds)
        retry_at = now + timedelta(seconds=settings.charge_retry_seconds)
        log.info("pledge.charge_failed", pledge_id=str(pledge.id), decline_code=result.decline_code)
        await self._commit(
            pledge,
            {
                "status": PledgeStatus.PAYMENT_FAILED,
                "grace_until": grace_until,
                "charge_due_at": retry_at if retry_at < grace_until else None,
                "decline_code": result.decline_code,
                "failure_code": "payment_failed",
                "failure_detail": result.message[:500],
            },
            finish=True,
            payment=self._declined_payment(pledge, result),
        )

    async def _compensate(self, pledge: Pledge) -> None:
        """Undo what was done, one idempotent call at a time: refund what was charged, forget the saved card,
        give the capacity back; then the final status.

        A backer's own cancel or withdrawal asks the refunds service for the refund, last: the capacity is
        released first, so a refunds outage delays only the refund (the pledge stays ``compensating`` for the
        sweeper), and the pledge ends ``canceled`` with that refund ``pending`` in its history until the refunds
        service reports the outcome. Compensations inside the saga (a payment the campaign then refused to
        count, a campaign that ended unsuccessfully) refund directly, first: they undo this service's own
        payment step and must not depend on a third service being up."""
        assert pledge.final_status is not None
        stripe, campaigns = self.runtime.stripe, self.runtime.campaigns
        final: dict[str, Any] = {"status": pledge.final_status}
        if pledge.final_status is PledgeStatus.CANCELED:
            final["canceled_at"] = utcnow()
        through_refunds = backer_refund_reason(pledge) is not None
        try:
            if not through_refunds:
                await self._refund_directly(pledge)
            needs_detach = (
                pledge.funding_model is FundingModel.ALL_OR_NOTHING
                and pledge.stripe_payment_method_id is not None
                and not pledge.payment_method_detached
            )
            needs_release = pledge.reservation_state in (ReservationState.PENDING, ReservationState.CONFIRMED)
            if needs_detach:
                assert pledge.stripe_payment_method_id
                await stripe.detach_payment_method(pledge.stripe_payment_method_id)
                if needs_release or through_refunds:
                    await self._commit(pledge, {"payment_method_detached": True})
                else:
                    await self._commit(pledge, {"payment_method_detached": True, **final}, finish=True)
                    return
            if needs_release:
                await campaigns.release(pledge.campaign_id, pledge.id, reason=str(pledge.final_status))
                if through_refunds:
                    await self._commit(pledge, {"reservation_state": ReservationState.RELEASED})
                else:
                    await self._commit(pledge, {"reservation_state": ReservationState.RELEASED, **final}, finish=True)
                    return
            if through_refunds and await self._request_backer_refund(pledge, final):
                return
        except PaymentProviderUnavailable as exc:
            raise StepUnavailable("payment provider") from exc
        except CampaignsUnavailable as exc:
            raise StepUnavailable("campaigns service") from exc
        except RefundsUnavailable as exc:
            log.warning("pledge.refund_request_failed", pledge_id=str(pledge.id), error=str(exc))
            raise StepUnavailable("refunds service") from exc
        await self._commit(pledge, final, finish=True)

    async def _refund_directly(self, pledge: Pledge) -> None:
        refund = await self._refund_due(pledge)
        if refund is None:
            return
        amount, refund_id = refund
        assert pledge.stripe_payment_intent_id
        result = await self.runtime.stripe.refund(
            ref(pledge),
            key=f"pledge:{pledge.id}:refund",
            payment_intent_id=pledge.stripe_payment_intent_id,
            amount=amount,
        )
        status = RefundStatus(result.status) if result.status in REFUND_STATUS_VALUES else RefundStatus.PENDING
        await self._commit(
            pledge,
            {},
            refund={
                "id": refund_id,
                "stripe_refund_id": result.refund_id or None,
                "amount": amount,
                "currency": pledge.currency,
                "status": status,
                "failure_reason": result.failure_reason,
                "batch_id": None,
                "source": "pledges",
                "stripe_event_at": None,
            },
        )

    async def _request_backer_refund(self, pledge: Pledge, final: dict[str, Any]) -> bool:
        """Ask the refunds service for the backer's refund and record it, with the final status, in one
        transaction. False if nothing is left to refund (the caller finishes the pledge)."""
        reason = backer_refund_reason(pledge)
        assert reason is not None
        outstanding, succeeded = await self._outstanding(pledge)
        if outstanding <= 0:
            return False
        assert pledge.stripe_payment_intent_id
        refund = await self.runtime.refunds.backer_refund(
            pledge_id=pledge.id,
            reason=reason,
            campaign_id=pledge.campaign_id,
            backer_id=pledge.backer_id,
            currency=pledge.currency,
            amount=outstanding,
            charged_amount=pledge.charged_amount,
            refunded_amount=succeeded,
            payment_intent_id=pledge.stripe_payment_intent_id,
        )
        status = REFUNDS_ITEM_STATUS.get(refund.status, RefundStatus.PENDING)
        await self._commit(
            pledge,
            final,
            finish=True,
            refund={
                "id": refund.id,
                "stripe_refund_id": refund.stripe_refund_id,
                "amount": refund.amount,
                "currency": pledge.currency,
                "status": status,
                "failure_reason": refund.failure_reason,
                "batch_id": refund.batch_id,
                "source": "refunds",
                "stripe_event_at": None,
            },
        )
        log.info("pledge.refund_requested", pledge_id=str(pledge.id), refund_id=str(refund.id), status=status.value)
        return True

    async def _outstanding(self, pledge: Pledge) -> tuple[int, int]:
        """(charged minus succeeded and pending refunds, succeeded refunds)."""
        if pledge.charged_amount <= 0 or not pledge.stripe_payment_intent_id:
            return 0, 0
        async with self.runtime.db.read_sessions() as session:
            sums = await RefundRepository(session).sums(pledge.id)
        succeeded = sums.get(RefundStatus.SUCCEEDED, 0)
        return pledge.charged_amount - succeeded - sums.get(RefundStatus.PENDING, 0), succeeded

    async def _refund_due(self, pledge: Pledge) -> tuple[int, uuid.UUID] | None:
        """What our own compensation refund must return, unless it was already made."""
        if pledge.charged_amount <= 0 or not pledge.stripe_payment_intent_id:
            return None
        refund_id = compensation_refund_id(pledge.id)
        async with self.runtime.db.read_sessions() as session:
            refunds = RefundRepository(session)
            if await refunds.for_update(refund_id) is not None:
                return None
            sums = await refunds.sums(pledge.id)
        outstanding = pledge.charged_amount - sums.get(RefundStatus.SUCCEEDED, 0) - sums.get(RefundStatus.PENDING, 0)
        return (outstanding, refund_id) if outstanding > 0 else None

    _steps: ClassVar[dict[PledgeStatus, Callable[[PledgeSaga, Pledge], Awaitable[None]]]] = {
        PledgeStatus.RESERVING: _reserve,
        PledgeStatus.AUTHORIZING: _authorize,
        PledgeStatus.CONFIRMING: _confirm,
        PledgeStatus.CHARGING: _charge,
        PledgeStatus.COMPENSATING: _compensate,
    }
