from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from services.pledges.models import (
    ConsentStatus,
    FundingModel,
    PaymentKind,
    PledgeStatus,
    RefundStatus,
)
from shared.db import INTEGER_MAX
from shared.money import Currency, PositiveAmount

PAYMENT_METHOD_PATTERN = r"^pm_[A-Za-z0-9_]{1,200}$"


class PledgeCreate(BaseModel):
    """A pledge to one reward tier of a live campaign. Send it with an `Idempotency-Key` header: repeating the
    request with the same key and body answers with the same pledge (or the same refusal) and never pays twice."""

    campaign_id: uuid.UUID
    tier_id: uuid.UUID
    tier_version: int = Field(ge=1, le=INTEGER_MAX, description="The version of the tier's terms the backer was shown.")
    amount: PositiveAmount = Field(
        description="The whole pledge in minor units: at least the tier's price plus shipping to the region; "
        "anything above is a bonus."
    )
    currency: Currency | None = Field(default=None, description="Optional; must be the campaign's currency.")
    shipping_region: str | None = Field(
        default=None, pattern=r"^[A-Z0-9_-]{2,32}$", description="Required when the tier ships.", examples=["US"]
    )
    payment_method: str = Field(
        pattern=PAYMENT_METHOD_PATTERN,
        description="A Stripe PaymentMethod id from Stripe.js/Elements (development: a test token such as "
        "`pm_card_visa`). Card details never reach this API.",
        examples=["pm_card_visa"],
    )


class PaymentMethodUpdate(BaseModel):
    """A new card for an all-or-nothing pledge (e.g. after a failed charge, within the grace period)."""

    payment_method: str = Field(pattern=PAYMENT_METHOD_PATTERN, examples=["pm_card_mastercard"])


class TermsAcceptance(BaseModel):
    version: int = Field(
        ge=1, le=INTEGER_MAX, description="The new version of the terms being accepted (as offered in `consent`)."
    )


class PledgeCancel(BaseModel):
    reason: str | None = Field(default=None, max_length=200)


class AmountBreakdown(BaseModel):
    total_amount: int = Field(description="What the pledge counts for and what is (or will be) charged.")
    tier_price_amount: int
    shipping_amount: int
    bonus_amount: int


class AcceptedTerms(BaseModel):
    """An immutable snapshot of the terms the backer accepted."""

    version: int
    content_hash: str = Field(description="SHA-256 of the canonical terms, as published by the campaigns service.")
    content: dict[str, Any] = Field(
        description="title, description, price_amount, currency, items, estimated_delivery, shipping."
    )
    accepted_at: datetime


class ConsentRequest(BaseModel):
    """A material change of the tier's terms awaiting the backer's decision: accept the new version or withdraw.
    Until the backer accepts, the terms already accepted remain what they bought."""

    status: ConsentStatus
    version: int | None
    content_hash: str | None
    reasons: list[str]
    deadline_at: datetime | None


class PaymentRecord(BaseModel):
    kind: PaymentKind = Field(description="`card_saved` (SetupIntent, nothing charged) or `charge` (PaymentIntent).")
    stripe_id: str
    amount: int
    currency: str
    status: str
    decline_code: str | None
    created_at: datetime
    updated_at: datetime


class RefundRecord(BaseModel):
    refund_id: uuid.UUID
    stripe_refund_id: str | None
    amount: int
    currency: str
    status: RefundStatus
    failure_reason: str | None
    batch_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class PaymentSummary(BaseModel):
    charged_amount: int = Field(description="Charged so far (0 while an all-or-nothing card is only saved).")
    refunded_amount: int = Field(description="Sum of succeeded refunds.")
    card_saved: bool
    decline_code: str | None
    grace_until: datetime | None = Field(description="A failed charge: supply a new card before this instant.")
    disputed: bool


class Failure(BaseModel):
    code: str
    detail: str | None


class PledgeSummary(BaseModel):
    id: uuid.UUID
    campaign_id: uuid.UUID
    tier_id: uuid.UUID
    backer_id: str
    status: PledgeStatus
    funding_model: FundingModel
    currency: str
    amount: AmountBreakdown
    shipping_region: str | None
    terms_version: int
    payment: PaymentSummary
    failure: Failure | None
    created_at: datetime
    updated_at: datetime
    canceled_at: datetime | None


class Pledge(PledgeSummary):
    """A pledge: what was bought, under which terms, what was paid, and its payment and refund history."""

    terms: AcceptedTerms = Field(description="The terms in force for this pledge (the latest accepted).")
    terms_history: list[AcceptedTerms] = Field(description="Every version accepted, oldest first.")
    consent: ConsentRequest | None
    payments: list[PaymentRecord]
    refunds: list[RefundRecord]


class PledgePage(BaseModel):
    items: list[PledgeSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class Reconciliation(BaseModel):
    """The pledges' view of a campaign's totals next to the campaigns service's."""

    campaign_id: uuid.UUID
    confirmed_pledges_amount: int = Field(description="Sum of pledges whose reservation is confirmed.")
    confirmed_pledges_count: int
    pending_pledges_amount: int
    pending_pledges_count: int
    campaign_committed_amount: int
    campaign_confirmed_sum_amount: int
    campaign_confirmed_count: int
    campaign_pending_sum_amount: int
    consistent: bool = Field(description="True when both services agree on every figure.")
