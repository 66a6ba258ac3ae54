from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from services.campaigns.models import AmountDisclosure, AvailabilityDisclosure, BackerCountDisclosure


class DisclosurePolicy(BaseModel):
    """How the public and backers see this campaign's figures. The creator and operators always see exact
    figures (operators' reads are recorded in the audit log)."""

    model_config = ConfigDict(from_attributes=True)

    amount_raised: AmountDisclosure = Field(
        default=AmountDisclosure.BANDS,
        description="`exact`; `rounded` (two significant figures, rounded down); `bands` (a range such as "
        "10,000 to 25,000); `percent_of_goal` (a whole percentage only); `hidden`.",
    )
    backer_count: BackerCountDisclosure = Field(
        default=BackerCountDisclosure.BANDS, description="`exact`, `bands` (e.g. 10 to 49) or `hidden`."
    )
    tier_availability: AvailabilityDisclosure = Field(
        default=AvailabilityDisclosure.COARSE,
        description="`exact` shows how many rewards are left; `coarse` shows only `available`, `limited` or "
        "`sold_out`. Note that exact availability lets readers estimate the amount raised from the prices.",
    )
    reveal_exact_after_close: bool = Field(
        default=False, description="Reveal exact figures to everyone once the campaign has ended."
    )


class AmountBand(BaseModel):
    min_amount: int = Field(description="Lower bound, inclusive, in minor units.")
    max_amount: int | None = Field(description="Upper bound, exclusive, in minor units; null for the top band.")


class CountBand(BaseModel):
    min_count: int = Field(description="Lower bound, inclusive.")
    max_count: int | None = Field(description="Upper bound, exclusive; null for the top band.")


class FundingFigures(BaseModel):
    """The campaign's figures as this viewer may see them. Fields the policy hides are null."""

    exact: bool = Field(description="True when the figures below are exact (creator, operators, or revealed).")
    amount_raised_amount: int | None = Field(
        description="Confirmed pledges, in minor units: exact, or rounded down when `amount_raised_rounded`."
    )
    amount_raised_rounded: bool = False
    amount_raised_band: AmountBand | None = None
    percent_of_goal: int | None = Field(default=None, description="Whole percent of the goal reached.")
    backer_count: int | None = Field(default=None, description="Number of confirmed pledges.")
    backer_count_band: CountBand | None = None
    pending_amount: int | None = Field(
        default=None, description="Pledges reserved but not yet confirmed (creator and operators only)."
    )
    refunded_amount: int | None = Field(
        default=None,
        description="Refunds that succeeded, in minor units, as the pledges service reported them (creator and "
        "operators only; may trail a refund by a few seconds).",
    )


class AvailabilityStatus(StrEnum):
    AVAILABLE = "available"
    LIMITED = "limited"
    SOLD_OUT = "sold_out"


class TierAvailability(BaseModel):
    status: AvailabilityStatus = Field(
        description="`available` (no quantity limit), `limited` (a limit, some left) or `sold_out`."
    )
    remaining_quantity: int | None = Field(
        default=None, description="Rewards left, counting pending pledges; null when the policy is `coarse`."
    )
    reserved_quantity: int | None = Field(default=None, description="Creator and operators only.")
    committed_quantity: int | None = Field(default=None, description="Creator and operators only.")
