from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.refunds.batches.schemas import StripeReason
from services.refunds.models import BatchStatus, ItemAction, ItemStatus
from shared.money import PositiveAmount


class SingleRefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pledge_id: uuid.UUID
    reason: str = Field(min_length=3, max_length=2000, description="Why this backer is refunded (audited).")
    amount: PositiveAmount | None = Field(
        default=None, description="Minor units, in the pledge's currency; default: everything still refundable."
    )
    stripe_reason: StripeReason = "requested_by_customer"


class SingleRefund(BaseModel):
    """One pledge's refund (or cancellation, if it was never charged), run as a batch of one."""

    id: uuid.UUID
    batch_id: uuid.UUID
    batch_status: BatchStatus
    requires_approval: bool = Field(description="Above the approval threshold: an operator must approve the batch.")
    pledge_id: uuid.UUID
    campaign_id: uuid.UUID
    action: ItemAction
    currency: str
    amount: int
    status: ItemStatus
    stripe_refund_id: str | None
    failure_code: str | None
    failure_reason: str | None
    follow_up_required: bool
    created_at: datetime
    finished_at: datetime | None
