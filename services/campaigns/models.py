"""The campaigns service's tables (its own database).

Money is always ``*_amount`` in minor units plus the campaign's ``currency``. The running totals that the
funding cap is checked against (``reserved_amount``, ``committed_amount`` on the campaign, the quantities on
the tier, the per-backer counts) are only ever changed by conditional UPDATEs in the reservations repository,
so that a cap holds under any concurrency.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

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
    """Events received from other services (``pledge.refunded``), unique on the producer's event id."""


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    LIVE = "live"
    SUSPENDED = "suspended"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class FundingModel(StrEnum):
    ALL_OR_NOTHING = "all_or_nothing"
    FLEXIBLE = "flexible"


class AmountDisclosure(StrEnum):
    EXACT = "exact"
    ROUNDED = "rounded"
    BANDS = "bands"
    PERCENT_OF_GOAL = "percent_of_goal"
    HIDDEN = "hidden"


class BackerCountDisclosure(StrEnum):
    EXACT = "exact"
    BANDS = "bands"
    HIDDEN = "hidden"


class AvailabilityDisclosure(StrEnum):
    EXACT = "exact"
    COARSE = "coarse"


class ChecklistItemKind(StrEnum):
    IDENTITY_VERIFIED = "identity_verified"
    PROTOTYPE_EVIDENCE = "prototype_evidence"
    BUDGET_PLAUSIBLE = "budget_plausible"
    RISKS_DISCLOSED = "risks_disclosed"
    FULFILMENT_PLAN = "fulfilment_plan"


class ChecklistResult(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


class ReservationStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    RELEASED = "released"
    EXPIRED = "expired"


class ActorRole(StrEnum):
    CREATOR = "creator"
    OPERATOR = "operator"
    SERVICE = "service"
    SYSTEM = "system"


class AuditAction(StrEnum):
    CREATED = "created"
    TRANSITION = "transition"
    CHECKLIST_RECORDED = "checklist_recorded"
    TERMS_CHANGED = "terms_changed"
    EXACT_FIGURES_READ = "exact_figures_read"


class Campaign(Base):
    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("reserved_amount >= 0", name="reserved_amount_non_negative"),
        CheckConstraint("committed_amount >= 0", name="committed_amount_non_negative"),
        CheckConstraint("backer_count >= 0", name="backer_count_non_negative"),
        CheckConstraint("NOT (uncapped AND cap_amount IS NOT NULL)", name="cap_decision_single"),
        Index("ix_campaigns_status_deadline_at", "status", "deadline_at"),
        Index("ix_campaigns_created_at_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    creator_id: Mapped[str] = mapped_column(String(200), index=True)
    status: Mapped[CampaignStatus] = mapped_column(state_enum(CampaignStatus, 32), default=CampaignStatus.DRAFT)
    revision: Mapped[int] = mapped_column(Integer, default=1)

    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    risks_and_challenges: Mapped[str | None] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(3))
    goal_amount: Mapped[int] = mapped_column(BigInteger)
    # The cap decision: a ceiling, or an explicit, recorded "no cap". Neither means undecided (a draft).
    cap_amount: Mapped[int | None] = mapped_column(BigInteger)
    uncapped: Mapped[bool] = mapped_column(Boolean, default=False)
    funding_model: Mapped[FundingModel] = mapped_column(state_enum(FundingModel, 32))
    deadline_at: Mapped[datetime | None]
    budget: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    amount_disclosure: Mapped[AmountDisclosure] = mapped_column(state_enum(AmountDisclosure, 32))
    backer_count_disclosure: Mapped[BackerCountDisclosure] = mapped_column(state_enum(BackerCountDisclosure, 32))
    availability_disclosure: Mapped[AvailabilityDisclosure] = mapped_column(state_enum(AvailabilityDisclosure, 32))
    reveal_exact_after_close: Mapped[bool] = mapped_column(Boolean, default=False)

    reserved_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    committed_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    backer_count: Mapped[int] = mapped_column(BigInteger, default=0)

    review_round: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    reviewed_at: Mapped[datetime | None]
    launched_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    tiers: Mapped[list[Tier]] = relationship(back_populates="campaign", lazy="raise", order_by="Tier.position")


class Tier(Base):
    """A reward tier. Its terms live in immutable ``TierVersion`` rows; the tier holds what is not a term
    (limits and the quantities claimed against them)."""

    __tablename__ = "tiers"
    __table_args__ = (
        CheckConstraint("reserved_quantity >= 0", name="reserved_quantity_non_negative"),
        CheckConstraint("committed_quantity >= 0", name="committed_quantity_non_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    quantity_limit: Mapped[int | None] = mapped_column(BigInteger)
    per_backer_limit: Mapped[int | None] = mapped_column(Integer)
    reserved_quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    committed_quantity: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    campaign: Mapped[Campaign] = relationship(back_populates="tiers", lazy="raise")


class TierVersion(Base):
    """One immutable version of a tier's terms, identified by (tier, version) and by its content hash."""

    __tablename__ = "tier_versions"
    __table_args__ = (UniqueConstraint("tier_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    tier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tiers.id", ondelete="CASCADE"), index=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    price_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    estimated_delivery: Mapped[str] = mapped_column(String(7))  # "YYYY-MM"
    shipping: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    material: Mapped[bool] = mapped_column(Boolean, default=False)
    change_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChecklistEntry(Base):
    """An operator's result for one checklist item in one review round. ``note`` is private to operators."""

    __tablename__ = "checklist_entries"
    __table_args__ = (UniqueConstraint("campaign_id", "review_round", "item"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    review_round: Mapped[int] = mapped_column(Integer)
    item: Mapped[ChecklistItemKind] = mapped_column(state_enum(ChecklistItemKind, 40))
    result: Mapped[ChecklistResult] = mapped_column(state_enum(ChecklistResult, 16))
    note: Mapped[str | None] = mapped_column(Text)
    reviewer_id: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Append-only: the repository only inserts and reads these rows."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_campaign_id_created_at", "campaign_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    action: Mapped[AuditAction] = mapped_column(state_enum(AuditAction, 32))
    actor_id: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[ActorRole] = mapped_column(state_enum(ActorRole, 16))
    from_status: Mapped[CampaignStatus | None] = mapped_column(state_enum(CampaignStatus, 32))
    to_status: Mapped[CampaignStatus | None] = mapped_column(state_enum(CampaignStatus, 32))
    reason: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reservation(Base):
    """Capacity held for one pledge. The primary key is the pledge id: the pledges service's idempotency key."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_reservations_status_expires_at", "status", "expires_at"),
        Index("ix_reservations_campaign_id_status", "campaign_id", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    tier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tiers.id", ondelete="CASCADE"))
    tier_version: Mapped[int] = mapped_column(Integer)
    backer_id: Mapped[str] = mapped_column(String(200))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    shipping_region: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[ReservationStatus] = mapped_column(
        state_enum(ReservationStatus, 16), default=ReservationStatus.PENDING
    )
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
    released_at: Mapped[datetime | None]
    release_reason: Mapped[str | None] = mapped_column(String(200))


class BackerTierCount(Base):
    """How many active (pending or confirmed) reservations a backer holds on a tier: the per-backer limit is a
    conditional upsert on this row."""

    __tablename__ = "backer_tier_counts"
    __table_args__ = (CheckConstraint("active_count >= 0", name="active_count_non_negative"),)

    tier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tiers.id", ondelete="CASCADE"), primary_key=True)
    backer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    active_count: Mapped[int] = mapped_column(Integer, default=0)


class PledgeRefundTotal(Base):
    """One pledge's refunded total as the pledges service last announced it (``pledge.refunded``). Each event
    carries the pledge's cumulative total and its ``revision`` (+1 per change: a refund, or a refund that failed
    later); the row keeps the total of the highest revision received, so a redelivered or late event changes
    nothing, and a lower total (a failed refund) replaces a higher one when it is newer."""

    __tablename__ = "pledge_refund_totals"
    __table_args__ = (CheckConstraint("refunded_amount >= 0", name="refunded_amount_non_negative"),)

    pledge_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CampaignRefundTotal(Base):
    """The sum of the campaign's ``PledgeRefundTotal`` rows, kept beside the campaign rather than on it: a refund
    never locks or rewrites the campaign row (the reservations' hot row, whose ``revision`` and ``updated_at``
    the public sees)."""

    __tablename__ = "campaign_refund_totals"
    __table_args__ = (CheckConstraint("refunded_amount >= 0", name="refunded_amount_non_negative"),)

    campaign_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
