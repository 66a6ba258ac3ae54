from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.refunds.models import AuditAction, BatchKind, BatchStatus, ItemAction, ItemStatus
from shared.money import Amount, Currency, PositiveAmount

StripeReason = Literal["requested_by_customer", "duplicate", "fraudulent"]
MAX_PLEDGE_IDS = 10_000


# -- selection: which pledges --------------------------------------------------------------------------------


class SelectAll(BaseModel):
    """Every pledge of the campaign; those with nothing to refund are listed as exclusions."""

    type: Literal["all"] = "all"


class SelectPledges(BaseModel):
    """These pledges (of this campaign)."""

    type: Literal["pledges"] = "pledges"
    pledge_ids: list[uuid.UUID] = Field(min_length=1, max_length=MAX_PLEDGE_IDS)

    @field_validator("pledge_ids")
    @classmethod
    def _unique(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(value)) != len(value):
            raise ValueError("pledge_ids must not repeat a pledge")
        return value


class SelectFilter(BaseModel):
    """The campaign's pledges matching every given criterion."""

    type: Literal["filter"] = "filter"
    tier_id: uuid.UUID | None = Field(default=None, description="Only pledges for this reward tier.")
    status: str | None = Field(default=None, max_length=32, description="Only pledges in this pledge status.")
    created_from: datetime | None = Field(default=None, description="Pledged at or after this instant.")
    created_to: datetime | None = Field(default=None, description="Pledged before this instant.")

    @model_validator(mode="after")
    def _range(self) -> SelectFilter:
        if self.created_from and self.created_to and self.created_from >= self.created_to:
            raise ValueError("created_from must be before created_to")
        if not any((self.tier_id, self.status, self.created_from, self.created_to)):
            raise ValueError("a filter needs at least one criterion (use type 'all' for every pledge)")
        return self


Selection = Annotated[SelectAll | SelectPledges | SelectFilter, Field(discriminator="type")]


# -- amount rule: how much of each pledge ------------------------------------------------------------------


class RefundFull(BaseModel):
    """Everything still refundable on each pledge. Pledges never charged are canceled instead."""

    type: Literal["full"] = "full"


class RefundPercent(BaseModel):
    """A percentage of each pledge's remaining refundable amount, rounded down to the minor unit."""

    type: Literal["percent"] = "percent"
    percent: int = Field(ge=1, le=100, strict=True)


class RefundFixed(BaseModel):
    """The same amount for each pledge, or what remains refundable when that is less."""

    type: Literal["fixed"] = "fixed"
    amount: PositiveAmount
    currency: Currency


class RefundAbove(BaseModel):
    """Only the part of each charged amount above `threshold_amount` (e.g. an overcharge)."""

    type: Literal["above"] = "above"
    threshold_amount: Amount
    currency: Currency


AmountRule = Annotated[RefundFull | RefundPercent | RefundFixed | RefundAbove, Field(discriminator="type")]


class RefundBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: uuid.UUID
    reason: str = Field(min_length=3, max_length=2000, description="Why these backers are refunded (audited).")
    selection: Selection = Field(default_factory=SelectAll)
    amount_rule: AmountRule = Field(default_factory=RefundFull)
    stripe_reason: StripeReason = Field(
        default="requested_by_customer", description="The reason recorded on each refund at Stripe."
    )


class ActionRequest(BaseModel):
    """An optional note recorded in the batch's audit log."""

    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=2000)


# -- reads ---------------------------------------------------------------------------------------------------


class CurrencyTotal(BaseModel):
    currency: str
    amount: int = Field(description="Minor units.")
    count: int


class StatusFigures(BaseModel):
    status: ItemStatus
    count: int
    amounts: list[CurrencyTotal]


class Progress(BaseModel):
    """Where a batch stands, computed from its items."""

    by_status: list[StatusFigures]
    total_items: int
    done_items: int = Field(description="Items decided (succeeded, pending at the card network, failed, canceled).")
    queued_items: int
    follow_up_items: int = Field(description="Items flagged for an operator (e.g. a refund that failed later).")
    refunded_amounts: list[CurrencyTotal] = Field(description="Succeeded and pending refunds, per currency.")
    rate_per_second: float = Field(description="Items decided per second over the recent window.")
    eta_seconds: float | None = Field(description="Estimated seconds until every item is decided (null: unknown).")
    percent_done: float


class RefundBatch(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: BatchKind
    campaign_id: uuid.UUID
    status: BatchStatus
    reason: str
    stripe_reason: str
    selection: dict[str, Any]
    amount_rule: dict[str, Any]
    item_count: int = Field(description="Pledges in the batch (refunds plus cancellations).")
    cancel_count: int = Field(description="Pledges never charged: canceled through the pledges service instead.")
    totals: list[CurrencyTotal] = Field(description="What the batch refunds, per currency (preview figures).")
    exclusion_counts: dict[str, int] = Field(description="Pledges left out, by reason.")
    requires_second_approval: bool
    created_by: str
    approved_by: str | None
    canceled_by: str | None
    created_at: datetime
    approved_at: datetime | None
    started_at: datetime | None
    paused_at: datetime | None
    completed_at: datetime | None
    canceled_at: datetime | None
    progress: Progress | None = None


class RefundBatchPage(BaseModel):
    items: list[RefundBatch]
    next_cursor: str | None


class Exclusion(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    pledge_id: uuid.UUID
    reason: str = Field(
        description="`already_refunded`, `disputed`, `never_charged`, `in_other_batch`, `nothing_to_refund`, "
        "`currency_mismatch`, `other_campaign`, `not_found`."
    )
    detail: str | None


class ExclusionPage(BaseModel):
    items: list[Exclusion]
    next_cursor: str | None


class AuditEntry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    batch_id: uuid.UUID
    action: AuditAction
    actor_id: str
    actor_role: str
    details: dict[str, Any]
    created_at: datetime


class ReportLine(BaseModel):
    """One item of a batch's report."""

    model_config = ConfigDict(from_attributes=True)

    item_id: uuid.UUID
    pledge_id: uuid.UUID
    backer_id: str
    action: ItemAction
    currency: str
    amount: int
    status: ItemStatus
    stripe_refund_id: str | None
    stripe_status: str | None
    failure_code: str | None
    failure_reason: str | None
    follow_up_required: bool
    follow_up_reason: str | None
    attempts: int
    created_at: datetime
    first_attempted_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class RefundBatchReport(BaseModel):
    batch: RefundBatch
    items: list[ReportLine]
