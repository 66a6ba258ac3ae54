from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.refunds.models import ItemStatus
from shared.money import Amount, Currency, PositiveAmount

BackerRefundReason = Literal["canceled_by_backer", "withdrawn_after_terms_change"]


class BackerRefundCreate(BaseModel):
    """The pledges service asks for the full refund a backer is owed after canceling or withdrawing. The pledge
    facts come from pledges, which owns them; the ledger still bounds every refund by the charged amount."""

    model_config = ConfigDict(extra="forbid")

    reason: BackerRefundReason
    campaign_id: uuid.UUID
    backer_id: str = Field(min_length=1, max_length=200)
    currency: Currency
    amount: PositiveAmount = Field(description="What is still to refund: charged minus succeeded/pending refunds.")
    charged_amount: PositiveAmount
    refunded_amount: Amount = Field(default=0, description="Refunds of this pledge that succeeded.")
    stripe_payment_intent_id: str = Field(min_length=1, max_length=255)


class BackerRefund(BaseModel):
    """The refund of one pledge asked for by its backer (a batch of one that needs no approval)."""

    id: uuid.UUID = Field(description="The refund item id: the `refund_id` reported to the pledges service.")
    batch_id: uuid.UUID
    pledge_id: uuid.UUID
    currency: str
    amount: int
    status: ItemStatus
    stripe_refund_id: str | None
    failure_code: str | None
    failure_reason: str | None
    created_at: datetime
    finished_at: datetime | None
