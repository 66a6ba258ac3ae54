from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.pledges.models import FundingModel, PledgeStatus, RefundStatus
from shared.money import Currency, PositiveAmount


class PledgeForRefund(BaseModel):
    """A pledge as the refunds service needs it. `status` is the pledge's own state:

    * in progress: `reserving`, `authorizing`, `confirming`, `charging`, `compensating`;
    * standing: `active` (all-or-nothing, card saved, not charged), `collected` (charged), `payment_failed`
      (charge failed, grace period running), `partially_refunded`, `refunded`;
    * final: `rejected`, `declined`, `failed`, `canceled`, `dropped`.

    Only `collected` and `partially_refunded` pledges have something to refund (`refundable_amount` > 0);
    `active` and `payment_failed` pledges were never charged: cancel them instead."""

    pledge_id: uuid.UUID
    campaign_id: uuid.UUID
    backer_id: str
    tier_id: uuid.UUID
    status: PledgeStatus
    funding_model: FundingModel
    currency: str
    total_amount: int
    charged_amount: int = Field(description="0 if never charged.")
    refunded_amount: int = Field(description="Sum of succeeded refunds.")
    refundable_amount: int = Field(description="charged_amount - refunded_amount.")
    stripe_payment_intent_id: str | None = Field(description="null if never charged.")
    disputed: bool
    created_at: datetime


class PledgeForRefundPage(BaseModel):
    items: list[PledgeForRefund]
    next_cursor: str | None


class RefundOutcome(BaseModel):
    """A refund made by the refunds service (one of its items), in whatever state it has reached. Sending the
    same `refund_id` again with a new status updates it."""

    refund_id: uuid.UUID = Field(description="The refunds service's item id.")
    stripe_refund_id: str | None = Field(default=None, max_length=255)
    amount: PositiveAmount
    currency: Currency
    status: RefundStatus = Field(description="`pending`, `succeeded`, `failed` or `canceled`.")
    failure_reason: str | None = Field(default=None, max_length=200)
    batch_id: uuid.UUID | None = None


MAX_REFUND_OUTCOMES = 500


class RefundOutcomeRecord(RefundOutcome):
    """One refund outcome of a bulk report: the single route's body plus the pledge it belongs to."""

    pledge_id: uuid.UUID


class RefundOutcomeBatch(BaseModel):
    records: list[RefundOutcomeRecord] = Field(
        min_length=1,
        max_length=MAX_REFUND_OUTCOMES,
        description=f"1 to {MAX_REFUND_OUTCOMES} outcomes, applied in this order.",
    )


class RefundOutcomeResult(BaseModel):
    """What became of one record: `recorded` (also for a replay, or a status older than the one held, which
    change nothing), or `refused` with the `code` the single route would have answered: `pledge_not_found`,
    `currency_mismatch`, `refund_id_reused` or `refund_exceeds_charged`."""

    refund_id: uuid.UUID
    pledge_id: uuid.UUID
    result: Literal["recorded", "refused"]
    code: str | None = None
    detail: str | None = None


class RefundOutcomeResults(BaseModel):
    results: list[RefundOutcomeResult] = Field(description="One per record, in the order of the request.")


class InternalCancel(BaseModel):
    reason: str = Field(min_length=1, max_length=200, examples=["campaign_refund_batch"])
