"""The vetting lifecycle: submit, review with a checklist, decide, launch; the public vetting record."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.config import Settings
from services.campaigns.dependencies import (
    get_settings,
    get_viewer,
    request_session,
    require_creator,
    require_creator_or_operator,
    require_operator,
)
from services.campaigns.lifecycle import CampaignAction
from services.campaigns.models import ChecklistItemKind
from services.campaigns.vetting import schemas
from services.campaigns.vetting.service import vetting_service
from shared.auth import Principal
from shared.errors import problem_responses
from shared.unit_of_work import UnitOfWorkRoute

router = APIRouter(prefix="/v1/campaigns", tags=["vetting"], route_class=UnitOfWorkRoute)

TRANSITION_ERRORS = problem_responses(401, 403, 404, 409, 422)


@router.get("/review-queue", response_model=list[schemas.ReviewQueueItem], responses=problem_responses(401, 403))
async def list_review_queue(
    limit: int = Query(default=50, ge=1, le=200),
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> list[schemas.ReviewQueueItem]:
    """Operators: campaigns waiting for review (`submitted`) or being reviewed (`in_review`), oldest
    submission first."""
    rows = await vetting_service.review_queue(session, limit=limit)
    return [schemas.ReviewQueueItem.model_validate(row) for row in rows]


@router.post("/{campaign_id}/submit", response_model=schemas.CampaignStatusChange, responses=TRANSITION_ERRORS)
async def submit_campaign(
    campaign_id: uuid.UUID,
    data: schemas.TransitionNote = Body(default_factory=schemas.TransitionNote),
    principal: Principal = Depends(require_creator),
    session: AsyncSession = Depends(request_session),
    settings: Settings = Depends(get_settings),
) -> schemas.CampaignStatusChange:
    """Submit your draft (or your revised campaign after changes were requested) for review.

    Refused with 422 `submission_incomplete` listing **every** missing item at once: description, risks
    and challenges, a cap decision, a budget, a deadline within the allowed range, at least one tier."""
    return await vetting_service.submit(session, campaign_id, Viewer(principal), settings, data.reason)


@router.post("/{campaign_id}/start-review", response_model=schemas.CampaignStatusChange, responses=TRANSITION_ERRORS)
async def start_campaign_review(
    campaign_id: uuid.UUID,
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> schemas.CampaignStatusChange:
    """Operators: take a submitted campaign into review, opening a new checklist round. An operator never
    reviews a campaign they created (403 `self_review_forbidden`)."""
    return await vetting_service.start_review(session, campaign_id, Viewer(principal))


@router.put(
    "/{campaign_id}/review-checklist/{item}",
    response_model=schemas.ChecklistEntry,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def record_checklist_item(
    campaign_id: uuid.UUID,
    item: ChecklistItemKind,
    data: schemas.ChecklistEntryUpdate,
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> schemas.ChecklistEntry:
    """Operators: record the result of one checklist item (identity verified, prototype evidence, budget
    plausible, risks disclosed, fulfilment plan) in the current review round. The note stays private to
    operators; the public vetting record shows only the item, its result and the reviewer's role."""
    entry = await vetting_service.record_checklist_item(session, campaign_id, item, data, Viewer(principal))
    return schemas.ChecklistEntry.model_validate(entry)


@router.get(
    "/{campaign_id}/review-checklist",
    response_model=schemas.ReviewChecklist,
    responses=problem_responses(401, 403, 404),
)
async def get_review_checklist(
    campaign_id: uuid.UUID,
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> schemas.ReviewChecklist:
    """Operators: the current round's checklist with private notes, and the items not yet recorded."""
    return await vetting_service.checklist(session, campaign_id, Viewer(principal))


async def _decide(
    session: AsyncSession, campaign_id: uuid.UUID, action: CampaignAction, principal: Principal, reason: str | None
) -> schemas.CampaignStatusChange:
    return await vetting_service.decide(session, campaign_id, action, Viewer(principal), reason)


@router.post("/{campaign_id}/approve", response_model=schemas.CampaignStatusChange, responses=TRANSITION_ERRORS)
async def approve_campaign(
    campaign_id: uuid.UUID,
    data: schemas.TransitionNote = Body(default_factory=schemas.TransitionNote),
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> schemas.CampaignStatusChange:
    """Operators: approve a campaign in review. Every checklist item of the round must be `passed`
    (409 `checklist_incomplete` lists the missing and failed items)."""
    return await _decide(session, campaign_id, CampaignAction.APPROVE, principal, data.reason)


@router.post("/{campaign_id}/request-changes", response_model=schemas.CampaignStatusChange, responses=TRANSITION_ERRORS)
async def request_campaign_changes(
    campaign_id: uuid.UUID,
    data: schemas.ReviewDecision,
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> schemas.CampaignStatusChange:
    """Operators: send a campaign in review back to its creator with the reason; the creator edits and
    submits again."""
    return await _decide(session, campaign_id, CampaignAction.REQUEST_CHANGES, principal, data.reason)


@router.post("/{campaign_id}/reject", response_model=schemas.CampaignStatusChange, responses=TRANSITION_ERRORS)
async def reject_campaign(
    campaign_id: uuid.UUID,
    data: schemas.ReviewDecision,
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> schemas.CampaignStatusChange:
    """Operators: reject a campaign in review, with the reason. Final."""
    return await _decide(session, campaign_id, CampaignAction.REJECT, principal, data.reason)


@router.post("/{campaign_id}/launch", response_model=schemas.CampaignStatusChange, responses=TRANSITION_ERRORS)
async def launch_campaign(
    campaign_id: uuid.UUID,
    principal: Principal = Depends(require_creator),
    session: AsyncSession = Depends(request_session),
    settings: Settings = Depends(get_settings),
) -> schemas.CampaignStatusChange:
    """Launch your approved campaign: it becomes public and accepts pledges until its deadline. Only an
    `approved` campaign can launch, and its deadline must still be far enough away (409
    `deadline_out_of_range`)."""
    return await vetting_service.launch(session, campaign_id, Viewer(principal), settings)


@router.post("/{campaign_id}/suspend", response_model=schemas.CampaignStatusChange, responses=TRANSITION_ERRORS)
async def suspend_campaign(
    campaign_id: uuid.UUID,
    data: schemas.ReviewDecision,
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> schemas.CampaignStatusChange:
    """Operators: freeze a live campaign (no new pledges, no edits) while something is investigated."""
    return await _decide(session, campaign_id, CampaignAction.SUSPEND, principal, data.reason)


@router.post("/{campaign_id}/reinstate", response_model=schemas.CampaignStatusChange, responses=TRANSITION_ERRORS)
async def reinstate_campaign(
    campaign_id: uuid.UUID,
    data: schemas.ReviewDecision,
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> schemas.CampaignStatusChange:
    """Operators: make a suspended campaign live again."""
    return await _decide(session, campaign_id, CampaignAction.REINSTATE, principal, data.reason)


@router.post("/{campaign_id}/cancel", response_model=schemas.CampaignStatusChange, responses=TRANSITION_ERRORS)
async def cancel_campaign(
    campaign_id: uuid.UUID,
    data: schemas.TransitionNote = Body(default_factory=schemas.TransitionNote),
    principal: Principal = Depends(require_creator_or_operator),
    session: AsyncSession = Depends(request_session),
) -> schemas.CampaignStatusChange:
    """Cancel a campaign (its creator, or an operator). A launched campaign that is canceled publishes
    `campaign.closed` with outcome `canceled`: pledges are canceled and nothing more is charged."""
    return await vetting_service.cancel(session, campaign_id, Viewer(principal), data.reason)


@router.get(
    "/{campaign_id}/vetting-record", response_model=schemas.VettingRecord, responses=problem_responses(401, 404)
)
async def get_vetting_record(
    campaign_id: uuid.UUID,
    viewer: Viewer = Depends(get_viewer),
    session: AsyncSession = Depends(request_session),
) -> schemas.VettingRecord:
    """The campaign's public vetting record: its status, when it was submitted and reviewed, which
    checklist items passed and by which role, and its history of states. Never the reviewers' notes."""
    return await vetting_service.record(session, campaign_id, viewer)
