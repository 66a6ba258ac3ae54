"""The refunds service's tables (its own database).

Pledge truth lives in the pledges service: a refund item keeps a snapshot of what it needs to act (the
PaymentIntent, the amount charged) and the outcome at Stripe. Money is ``*_amount`` in minor units beside a
``currency``. Item claims (lease columns), the fleet-wide Stripe rate limit (``rate_limits``) and the
per-pledge refund ledger are only ever changed by conditional UPDATEs, so they hold with several replicas.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
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


class BatchKind(StrEnum):
    BATCH = "batch"
    SINGLE = "single"
    BACKER = "backer"  # a backer's own refund after canceling or withdrawing (asked by pledges; no approval)


class BatchStatus(StrEnum):
    PREVIEW = "preview"  # created, nothing moves until approved and started
    APPROVED = "approved"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"  # every item was sent (or decided); pending refunds may still settle
    CANCELED = "canceled"


OPEN_BATCH_STATUSES = (BatchStatus.PREVIEW, BatchStatus.APPROVED, BatchStatus.RUNNING, BatchStatus.PAUSED)


class ItemAction(StrEnum):
    REFUND = "refund"  # a refund at Stripe
    CANCEL_PLEDGE = "cancel_pledge"  # never charged: canceled through the pledges service instead


class ItemStatus(StrEnum):
    QUEUED = "queued"  # not decided yet (possibly being worked on under a lease)
    PENDING = "pending"  # Stripe accepted the refund, the card network has not settled it yet
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"  # never sent: the batch was canceled first


class RefundBatch(Base):
    __tablename__ = "refund_batches"
    __table_args__ = (Index(None, "campaign_id", "created_at"), Index(None, "status"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[BatchKind] = mapped_column(state_enum(BatchKind), default=BatchKind.BATCH)
    campaign_id: Mapped[uuid.UUID]
    status: Mapped[BatchStatus] = mapped_column(state_enum(BatchStatus))
    reason: Mapped[str] = mapped_column(Text)
    stripe_reason: Mapped[str] = mapped_column(String(32))
    selection: Mapped[dict[str, Any]] = mapped_column(JSON)
    amount_rule: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Preview figures, fixed at creation: [{currency, amount, count}] and {reason: count}.
    totals: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    exclusion_counts: Mapped[dict[str, int]] = mapped_column(JSON)
    item_count: Mapped[int] = mapped_column(Integer)
    cancel_count: Mapped[int] = mapped_column(Integer)
    requires_second_approval: Mapped[bool] = mapped_column(Boolean)
    created_by: Mapped[str] = mapped_column(String(200))
    created_by_role: Mapped[str] = mapped_column(String(32))
    approved_by: Mapped[str | None] = mapped_column(String(200))
    canceled_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    canceled_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RefundItem(Base):
    """One pledge in one batch. The idempotency key is written with the row, long before any Stripe call."""

    __tablename__ = "refund_items"
    __table_args__ = (
        # One item per pledge per batch: a second one cannot exist, whatever the code does.
        Index("uq_refund_items_batch_id_pledge_id", "batch_id", "pledge_id", unique=True),
        Index("uq_refund_items_idempotency_key", "idempotency_key", unique=True),
        # The claim query: queued items of a batch in order.
        Index(None, "status", "batch_id", "seq"),
        Index(None, "pledge_id"),
        Index(None, "report_due"),
        CheckConstraint("amount >= 0", name="amount_not_negative"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("refund_batches.id"))
    seq: Mapped[int] = mapped_column(Integer)
    campaign_id: Mapped[uuid.UUID]
    pledge_id: Mapped[uuid.UUID]
    backer_id: Mapped[str] = mapped_column(String(200))
    action: Mapped[ItemAction] = mapped_column(state_enum(ItemAction))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    charged_amount: Mapped[int] = mapped_column(BigInteger)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[ItemStatus] = mapped_column(state_enum(ItemStatus))
    idempotency_key: Mapped[str] = mapped_column(String(255))

    # Execution: claimed under a lease by one worker at a time; `attempts` counts calls that may have reached
    # Stripe, so a resumed item is reconciled (its PaymentIntent's refunds listed) before anything is resent.
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    first_attempted_at: Mapped[datetime | None]
    last_attempted_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    ledger_reserved: Mapped[bool] = mapped_column(Boolean, default=False)

    # Outcome.
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255))
    stripe_status: Mapped[str | None] = mapped_column(String(32))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    follow_up_required: Mapped[bool] = mapped_column(Boolean, default=False)
    follow_up_reason: Mapped[str | None] = mapped_column(String(500))

    # Telling the pledges service: `report_due` is set with every outcome it must hear about.
    report_due: Mapped[bool] = mapped_column(Boolean, default=False)
    report_claimed_until: Mapped[datetime | None]
    reported_status: Mapped[str | None] = mapped_column(String(32))
    reported_at: Mapped[datetime | None]

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class RefundExclusion(Base):
    """A pledge the selection matched but the batch leaves out, with the reason (shown in the preview)."""

    __tablename__ = "refund_exclusions"
    __table_args__ = (Index("uq_refund_exclusions_batch_id_pledge_id", "batch_id", "pledge_id", unique=True),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("refund_batches.id"))
    pledge_id: Mapped[uuid.UUID]
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditAction(StrEnum):
    CREATED = "created"
    APPROVED = "approved"
    STARTED = "started"
    PAUSED = "paused"
    RESUMED = "resumed"
    CANCELED = "canceled"
    COMPLETED = "completed"
    REPORT_DOWNLOADED = "report_downloaded"
    ITEM_FLAGGED = "item_flagged"


class BatchAuditEntry(Base):
    """Append-only: who did what to a batch, and when."""

    __tablename__ = "refund_batch_audit"
    __table_args__ = (Index(None, "batch_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    batch_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("refund_batches.id"))
    action: Mapped[AuditAction] = mapped_column(state_enum(AuditAction))
    actor_id: Mapped[str] = mapped_column(String(200))
    actor_role: Mapped[str] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PledgeRefundLedger(Base):
    """What this service has committed to refund per pledge, across all batches.

    ``committed_amount`` grows by a conditional UPDATE (``committed + amount <= charged``) before an item's
    first Stripe call and shrinks when a refund is known not to have happened (refused, or failed later), so
    no pledge is ever sent refunds beyond what was charged, whatever batches overlap.
    """

    __tablename__ = "pledge_refund_ledger"
    __table_args__ = (CheckConstraint("committed_amount <= charged_amount", name="not_above_charged"),)

    pledge_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    charged_amount: Mapped[int] = mapped_column(BigInteger)
    committed_amount: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateLimit(Base):
    """A shared rate limit as GCRA state: the theoretical arrival time of the next request, in microseconds
    since the epoch. Every replica reserves send slots by one conditional UPDATE of this row."""

    __tablename__ = "rate_limits"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    tat_us: Mapped[int] = mapped_column(BigInteger)


class StripeEvent(Base):
    """Webhook inbox, unique on Stripe's event id: a redelivered event is acknowledged and ignored."""

    __tablename__ = "stripe_events"
    __table_args__ = (Index(None, "processed_at", "received_at"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str | None] = mapped_column(String(100))
