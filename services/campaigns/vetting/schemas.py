from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.campaigns.lifecycle import CampaignAction
from services.campaigns.models import ActorRole, CampaignStatus, ChecklistItemKind, ChecklistResult


class TransitionNote(BaseModel):
    """An optional reason, kept in the audit log."""

    reason: str | None = Field(default=None, max_length=2000)


class ReviewDecision(BaseModel):
    """A decision that must be explained (request changes, reject, suspend, reinstate)."""

    reason: str = Field(min_length=1, max_length=2000, description="Shown to the creator; kept in the audit log.")


class CampaignStatusChange(BaseModel):
    campaign_id: uuid.UUID
    previous_status: CampaignStatus
    status: CampaignStatus
    revision: int
    allowed_actions: list[CampaignAction]
    changed_at: datetime


class ChecklistEntryUpdate(BaseModel):
    result: ChecklistResult
    note: str | None = Field(default=None, max_length=4000, description="Private to operators.")


class ChecklistEntry(BaseModel):
    """An operator's result for one checklist item, with the private note (operators only)."""

    model_config = ConfigDict(from_attributes=True)

    item: ChecklistItemKind
    result: ChecklistResult
    note: str | None
    reviewer_id: str
    review_round: int
    recorded_at: datetime


class ReviewChecklist(BaseModel):
    campaign_id: uuid.UUID
    review_round: int
    entries: list[ChecklistEntry]
    missing_items: list[ChecklistItemKind]


class ReviewQueueItem(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    creator_id: str
    status: CampaignStatus
    submitted_at: datetime | None
    review_round: int


class VettingCheck(BaseModel):
    item: ChecklistItemKind
    result: ChecklistResult
    checked_by_role: ActorRole = Field(description="Always `operator`: checks are never done by the creator.")
    recorded_at: datetime


class VettingEvent(BaseModel):
    from_status: CampaignStatus | None
    to_status: CampaignStatus | None
    by_role: ActorRole
    at: datetime


class VettingRecord(BaseModel):
    """The public summary of how this campaign was vetted: which checks passed, when and by which role.
    Operators' private notes and identities are never part of it."""

    campaign_id: uuid.UUID
    status: CampaignStatus
    submitted_at: datetime | None
    reviewed_at: datetime | None
    review_round: int
    checks: list[VettingCheck]
    history: list[VettingEvent]
    feedback: str | None = Field(
        default=None,
        description="The reviewer's latest reason for requesting changes or rejecting (creator and operators only).",
    )
