from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.campaigns.models import CampaignStatus, FundingModel, ReservationStatus
from shared.db import INTEGER_MAX
from shared.money import Currency, PositiveAmount


class ReservationCreate(BaseModel):
    """Hold capacity for one pledge. `pledge_id` is the idempotency key: repeating the call with the same
    pledge id and the same fields returns the existing reservation (200) instead of a second one."""

    pledge_id: uuid.UUID
    tier_id: uuid.UUID
    tier_version: int = Field(ge=1, le=INTEGER_MAX, description="The version of the tier's terms the backer was shown.")
    backer_id: str = Field(min_length=1, max_length=200)
    amount: PositiveAmount = Field(
        description="The whole pledge counted toward goal and cap: tier price + shipping + any bonus."
    )
    currency: Currency
    shipping_region: str | None = Field(default=None, max_length=32)
    confirmed: bool = Field(
        default=False,
        description="The payment is already secured (an all-or-nothing pledge's saved card): the capacity is "
        "held and committed in one step, with no `confirm` to follow. Otherwise the reservation is pending.",
    )


class ReservationRelease(BaseModel):
    reason: str = Field(default="released", min_length=1, max_length=200, examples=["payment_declined"])


class Reservation(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    pledge_id: uuid.UUID = Field(validation_alias="id")
    campaign_id: uuid.UUID
    tier_id: uuid.UUID
    tier_version: int
    backer_id: str
    amount: int
    currency: str
    shipping_region: str | None
    status: ReservationStatus = Field(
        description="`pending` (held, counts against the cap), `confirmed` (committed), `released` or `expired`."
    )
    expires_at: datetime = Field(description="A pending reservation not confirmed by then is released.")
    created_at: datetime
    confirmed_at: datetime | None
    released_at: datetime | None
    release_reason: str | None


class CampaignCapabilities(BaseModel):
    accepts_pledges: bool
    terms_editable: bool
    may_charge: bool
    may_refund: bool
    closed: bool


class CampaignSnapshot(BaseModel):
    """The campaign as other services need it, with exact figures (service callers only)."""

    id: uuid.UUID
    creator_id: str
    title: str
    status: CampaignStatus
    capabilities: CampaignCapabilities
    accepts_pledges: bool = Field(description="Live and before the deadline: a reservation may succeed.")
    funding_model: FundingModel
    currency: str
    goal_amount: int
    cap_amount: int | None
    uncapped: bool
    deadline_at: datetime | None
    committed_amount: int
    reserved_amount: int
    backer_count: int
    launched_at: datetime | None
    closed_at: datetime | None


class CampaignTotals(BaseModel):
    """Reconciliation: the running totals next to the sums recomputed from the reservations."""

    campaign_id: uuid.UUID
    currency: str
    committed_amount: int
    reserved_amount: int
    backer_count: int
    confirmed_sum_amount: int
    confirmed_count: int
    pending_sum_amount: int
    pending_count: int
    consistent: bool = Field(description="True when the running totals equal the recomputed sums.")


class ReservationPage(BaseModel):
    items: list[Reservation]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
