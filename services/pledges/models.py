"""The pledges service's tables (its own database).

A pledge row is also the durable state of its saga (reserve at campaigns → Stripe → confirm): every step
commits its outcome on the row before the next network call, and a driver (the request, the sweeper or the
charge run) holds the row's lease while it works, so any replica can resume a pledge a dead process left.
Money is ``*_amount`` in minor units plus the pledge's ``currency``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import TYPE_ANNOTATION_MAP, new_metadata, state_enum, utcnow
from shared.idempotency import IdempotencyRecordMixin
from shared.outbox import InboxEventMixin, OutboxEventMixin


class Base(DeclarativeBase):
    metadata = new_metadata()
    type_annotation_map: ClassVar[dict[Any, Any]] = TYPE_ANNOTATION_MAP


class IdempotencyRecord(IdempotencyRecordMixin, Base):
    pass


class OutboxEvent(OutboxEventMixin, Base):
    pass


class InboxEvent(InboxEventMixin, Base):
    pass


class PledgeStatus(StrEnum):
    """A pledge's state. In progress: ``reserving`` → ``authorizing`` → ``confirming`` (the saga),
    ``charging`` (the charge run), ``compensating`` (undoing: refund, detach the card, release capacity).
    Standing: ``active`` (all-or-nothing: card saved, charged only if the campaign succeeds), ``collected``
    (charged), ``payment_failed`` (the charge failed; the backer may supply a new card within the grace
    period), ``partially_refunded``, ``refunded``. Final: ``rejected`` (refused by the campaign: cap, sold
    out, terms changed...), ``declined`` (the card was declined), ``failed`` (could not complete; undone),
    ``canceled`` (by the backer, the campaign's failure, or the refunds service), ``dropped`` (no successful
    charge by the end of the grace period)."""

    RESERVING = "reserving"
    AUTHORIZING = "authorizing"
    CONFIRMING = "confirming"
    CHARGING = "charging"
    COMPENSATING = "compensating"
    ACTIVE = "active"
    COLLECTED = "collected"
    PAYMENT_FAILED = "payment_failed"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    REJECTED = "rejected"
    DECLINED = "declined"
    FAILED = "failed"
    CANCELED = "canceled"
    DROPPED = "dropped"


IN_PROGRESS = frozenset(
    {
        PledgeStatus.RESERVING,
        PledgeStatus.AUTHORIZING,
        PledgeStatus.CONFIRMING,
        PledgeStatus.CHARGING,
        PledgeStatus.COMPENSATING,
    }
)
FINAL = frozenset(
    {
        PledgeStatus.REJECTED,
        PledgeStatus.DECLINED,
        PledgeStatus.FAILED,
        PledgeStatus.CANCELED,
        PledgeStatus.DROPPED,
    }
)
CHARGED = frozenset({PledgeStatus.COLLECTED, PledgeStatus.PARTIALLY_REFUNDED, PledgeStatus.REFUNDED})


class FundingModel(StrEnum):
    ALL_OR_NOTHING = "all_or_nothing"
    FLEXIBLE = "flexible"


class ReservationState(StrEnum):
    """What the campaigns service holds for this pledge, as far as we know."""

    NONE = "none"
    PENDING = "pending"
    CONFIRMED = "confirmed"
    RELEASED = "released"


class ConsentStatus(StrEnum):
    NONE = "none"
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    WITHDRAWN = "withdrawn"


class PaymentKind(StrEnum):
    CARD_SAVED = "card_saved"  # SetupIntent: card saved for off-session use, nothing charged
    CHARGE = "charge"  # PaymentIntent


class RefundStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class Pledge(Base):
    __tablename__ = "pledges"
    __table_args__ = (
        UniqueConstraint("backer_id", "idempotency_key"),
        Index(None, "campaign_id", "created_at", "id"),
        Index(None, "backer_id", "created_at"),
        Index(None, "status", "lease_until"),
        Index(None, "charge_due_at"),
        Index(None, "tier_id", "terms_version"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    backer_id: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))

    campaign_id: Mapped[uuid.UUID]
    tier_id: Mapped[uuid.UUID]
    terms_version: Mapped[int] = mapped_column(Integer)  # the version the backer accepted most recently
    funding_model: Mapped[FundingModel] = mapped_column(state_enum(FundingModel))
    currency: Mapped[str] = mapped_column(String(3))
    total_amount: Mapped[int]
    tier_price_amount: Mapped[int]
    shipping_amount: Mapped[int]
    bonus_amount: Mapped[int]
    shipping_region: Mapped[str | None] = mapped_column(String(32))
    # What the backer gave us to pay with: a Stripe PaymentMethod id or test token (never card data).
    payment_method_input: Mapped[str] = mapped_column(String(255))

    status: Mapped[PledgeStatus] = mapped_column(state_enum(PledgeStatus))
    final_status: Mapped[PledgeStatus | None] = mapped_column(state_enum(PledgeStatus))  # after compensating
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_status: Mapped[int | None] = mapped_column(Integer)
    failure_detail: Mapped[str | None] = mapped_column(String(500))
    failure_extra: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decline_code: Mapped[str | None] = mapped_column(String(100))
    reservation_state: Mapped[ReservationState] = mapped_column(state_enum(ReservationState))

    # Stripe: deterministic idempotency keys (written before each call) and the objects they produced.
    customer_key: Mapped[str | None] = mapped_column(String(255))
    setup_intent_key: Mapped[str | None] = mapped_column(String(255))
    payment_intent_key: Mapped[str | None] = mapped_column(String(255))
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255))
    stripe_setup_intent_id: Mapped[str | None] = mapped_column(String(255))
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    payment_method_detached: Mapped[bool] = mapped_column(Boolean, default=False)
    payment_method_version: Mapped[int] = mapped_column(Integer, default=1)

    charged_amount: Mapped[int] = mapped_column(default=0)
    refunded_amount: Mapped[int] = mapped_column(default=0)
    # +1 each time refunded_amount changes (up with a refund, down when one fails later): the order of the
    # pledge.refunded events, so a consumer keeps the latest total even when it is lower.
    refund_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    disputed: Mapped[bool] = mapped_column(Boolean, default=False)
    charged_at: Mapped[datetime | None]

    # Charge run (all-or-nothing, after the campaign succeeded).
    charge_due_at: Mapped[datetime | None]
    charge_attempts: Mapped[int] = mapped_column(Integer, default=0)
    grace_until: Mapped[datetime | None]

    # Re-consent after a material change of the tier's terms.
    consent_status: Mapped[ConsentStatus] = mapped_column(state_enum(ConsentStatus))
    consent_version: Mapped[int | None] = mapped_column(Integer)
    consent_content_hash: Mapped[str | None] = mapped_column(String(64))
    consent_reasons: Mapped[list[str] | None] = mapped_column(JSON)
    consent_deadline_at: Mapped[datetime | None]

    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    canceled_at: Mapped[datetime | None]

    # The driver working on the pledge (request, sweeper, charge run) and until when.
    lease_token: Mapped[uuid.UUID | None]
    lease_until: Mapped[datetime | None]

    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PledgeTerms(Base):
    """An immutable snapshot of terms a backer accepted: never updated, one row per accepted version."""

    __tablename__ = "pledge_terms"
    __table_args__ = (UniqueConstraint("pledge_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    pledge_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pledges.id"))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    accepted_at: Mapped[datetime]


class PledgePayment(Base):
    """Payment history: each SetupIntent / PaymentIntent made for a pledge and its last known state."""

    __tablename__ = "pledge_payments"
    __table_args__ = (Index(None, "pledge_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    pledge_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pledges.id"))
    kind: Mapped[PaymentKind] = mapped_column(state_enum(PaymentKind))
    stripe_id: Mapped[str] = mapped_column(String(255), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(40))
    decline_code: Mapped[str | None] = mapped_column(String(100))
    stripe_event_at: Mapped[datetime | None]  # the newest webhook applied (out-of-order deliveries)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PledgeRefund(Base):
    """Refund history. ``id`` is the refunds service's item id (or ours for a cancel's own refund)."""

    __tablename__ = "pledge_refunds"
    __table_args__ = (Index(None, "pledge_id"), Index(None, "stripe_refund_id"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    pledge_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pledges.id"))
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[RefundStatus] = mapped_column(state_enum(RefundStatus))
    failure_reason: Mapped[str | None] = mapped_column(String(200))
    batch_id: Mapped[uuid.UUID | None]
    source: Mapped[str] = mapped_column(String(40))  # "refunds" (the refunds service) or "pledges"
    stripe_event_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CampaignClosure(Base):
    """A ``campaign.closed`` event as received: the durable trigger of a charge run or a mass cancel."""

    __tablename__ = "campaign_closures"

    campaign_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32))  # succeeded | failed | canceled
    funding_model: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[uuid.UUID]
    closed_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class StripeEvent(Base):
    """Stripe webhook inbox, unique on Stripe's event id: a redelivery is acknowledged and ignored."""

    __tablename__ = "stripe_events"
    __table_args__ = (Index(None, "processed_at", "received_at"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    stripe_created_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
