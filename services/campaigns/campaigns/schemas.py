from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.campaigns.disclosure.schemas import DisclosurePolicy, FundingFigures
from services.campaigns.lifecycle import CampaignAction
from services.campaigns.models import CampaignStatus, FundingModel
from shared.money import Amount, Currency, PositiveAmount


class BudgetLine(BaseModel):
    """One line of the creator's budget: what the money is for."""

    label: str = Field(min_length=1, max_length=200, examples=["Injection moulds"])
    cost_amount: Amount


class CapDecision(StrEnum):
    CAPPED = "capped"
    UNCAPPED = "uncapped"
    UNDECIDED = "undecided"


class CampaignBase(BaseModel):
    @model_validator(mode="after")
    def _one_cap_decision(self) -> CampaignBase:
        cap_amount = getattr(self, "cap_amount", None)
        if getattr(self, "uncapped", None) and cap_amount is not None:
            raise ValueError("choose either a `cap_amount` or `uncapped: true`, not both")
        goal_amount = getattr(self, "goal_amount", None)
        if cap_amount is not None and goal_amount is not None and cap_amount < goal_amount:
            raise ValueError("`cap_amount` must be at least `goal_amount`")
        return self


class CampaignCreate(CampaignBase):
    """A new campaign, created in `draft`. Everything except the title, currency, goal and funding model can
    be completed later; submission for review lists whatever is still missing."""

    title: str = Field(min_length=1, max_length=200, description="The campaign's public title.")
    description: str = Field(default="", max_length=20_000)
    currency: Currency
    goal_amount: PositiveAmount = Field(description="The funding goal (the floor), in minor units.")
    cap_amount: PositiveAmount | None = Field(
        default=None, description="The funding cap (the ceiling): pledges beyond it are refused."
    )
    uncapped: bool = Field(
        default=False, description="An explicit, public decision to accept pledges without a ceiling."
    )
    funding_model: FundingModel = Field(
        description="`all_or_nothing`: cards are saved and charged only if the goal is met at the deadline; "
        "`flexible`: backers are charged when they pledge."
    )
    deadline_at: AwareDatetime | None = Field(default=None, description="When pledging ends (with a time zone).")
    risks_and_challenges: str | None = Field(default=None, max_length=20_000)
    budget: list[BudgetLine] = Field(default_factory=list, max_length=200)
    disclosure_policy: DisclosurePolicy = Field(default_factory=DisclosurePolicy)


class CampaignUpdate(CampaignBase):
    """A partial update: only the fields sent change. Requires `If-Match` with the campaign's ETag.

    Before launch every field but the currency can change; a change to the goal, cap, funding model, deadline,
    budget or risks of an `approved` campaign sends it back to review. Once live, only the title,
    description, risks text and disclosure policy can change."""

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    goal_amount: PositiveAmount | None = None
    cap_amount: PositiveAmount | None = None
    uncapped: bool | None = None
    funding_model: FundingModel | None = None
    deadline_at: AwareDatetime | None = None
    risks_and_challenges: str | None = Field(default=None, max_length=20_000)
    budget: list[BudgetLine] | None = Field(default=None, max_length=200)
    disclosure_policy: DisclosurePolicy | None = None


class Campaign(BaseModel):
    """A campaign as the caller may see it. Figures follow the campaign's disclosure policy."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    creator_id: str
    status: CampaignStatus
    revision: int = Field(description="Increases on every edit; the `ETag` header is this value in quotes.")
    title: str
    description: str
    risks_and_challenges: str | None
    currency: str
    goal_amount: int
    cap_decision: CapDecision
    cap_amount: int | None
    funding_model: FundingModel
    deadline_at: datetime | None
    budget: list[BudgetLine]
    budget_total_amount: int
    disclosure_policy: DisclosurePolicy
    funding: FundingFigures
    accepts_pledges: bool = Field(description="True while the campaign is live and before its deadline.")
    allowed_actions: list[CampaignAction] = Field(
        description="Lifecycle actions the campaign's state allows next (the caller's role still applies)."
    )
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    reviewed_at: datetime | None
    launched_at: datetime | None
    closed_at: datetime | None


class CampaignSort(StrEnum):
    """Orders that reveal nothing the disclosure policy hides (there is no sort by amount raised)."""

    NEWEST = "newest"
    DEADLINE = "deadline"


class CampaignPage(BaseModel):
    items: list[Campaign]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")


class MissingItem(BaseModel):
    field: str
    message: str
