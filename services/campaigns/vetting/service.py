"""Vetting: every state change of a campaign goes through ``transition`` (whitelist, actor, audit)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.audit.service import audit_service
from services.campaigns.campaigns.exceptions import CampaignNotFound
from services.campaigns.campaigns.repository import CampaignRepository
from services.campaigns.config import Settings
from services.campaigns.disclosure.service import public_funding_figures
from services.campaigns.lifecycle import ACTORS, CampaignAction, allowed_actions, next_status
from services.campaigns.models import (
    ActorRole,
    AuditAction,
    Campaign,
    CampaignStatus,
    ChecklistEntry,
    ChecklistItemKind,
    ChecklistResult,
    OutboxEvent,
)
from services.campaigns.tiers.repository import TierRepository
from services.campaigns.vetting import schemas
from services.campaigns.vetting.exceptions import (
    ActionNotPermitted,
    ChecklistIncomplete,
    DeadlineOutOfRange,
    NotCampaignCreator,
    ReviewNotInProgress,
    SelfReviewForbidden,
    SubmissionIncomplete,
    TransitionNotAllowed,
)
from services.campaigns.vetting.repository import ChecklistRepository, VettingHistoryRepository
from shared.db import utcnow
from shared.outbox import publish

log = structlog.get_logger("campaigns.vetting")

CAMPAIGN_CLOSED = "campaign.closed"


def closed_event_payload(campaign: Campaign) -> dict[str, Any]:
    """``campaign.closed`` leaves the service: figures appear only as the public may see them."""
    return {
        "campaign_id": str(campaign.id),
        "outcome": campaign.status.value,
        "funding_model": campaign.funding_model.value,
        "currency": campaign.currency,
        "goal_amount": campaign.goal_amount,
        "deadline_at": campaign.deadline_at.isoformat() if campaign.deadline_at else None,
        "closed_at": campaign.closed_at.isoformat() if campaign.closed_at else None,
        "public_funding": public_funding_figures(campaign).model_dump(mode="json"),
    }


class VettingService:
    async def transition(
        self,
        session: AsyncSession,
        campaign: Campaign,
        action: CampaignAction,
        *,
        actor_id: str,
        actor_role: ActorRole,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> schemas.CampaignStatusChange:
        """Move ``campaign`` (locked by the caller) along the whitelist and write the audit entry."""
        target = next_status(campaign.status, action)
        if target is None:
            raise TransitionNotAllowed(campaign.status, action)
        if actor_role not in ACTORS[action]:
            raise ActionNotPermitted(f"The {actor_role} role cannot {action.replace('_', ' ')} a campaign.")
        now = utcnow()
        source = campaign.status
        campaign.status = target
        campaign.revision += 1
        campaign.updated_at = now
        await audit_service.record(
            session,
            campaign.id,
            AuditAction.TRANSITION,
            actor_id=actor_id,
            actor_role=actor_role,
            from_status=source,
            to_status=target,
            reason=reason,
            details={"action": action.value, **(details or {})},
        )
        log.info("campaign.transition", campaign_id=str(campaign.id), action=action.value, to=target.value)
        return schemas.CampaignStatusChange(
            campaign_id=campaign.id,
            previous_status=source,
            status=target,
            revision=campaign.revision,
            allowed_actions=allowed_actions(target),
            changed_at=now,
        )

    async def _locked_for(self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer) -> Campaign:
        repository = CampaignRepository(session)
        if await repository.get_visible(campaign_id, viewer) is None:
            raise CampaignNotFound(campaign_id)
        campaign = await repository.get_locked(campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        return campaign

    async def _as_creator(self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer) -> Campaign:
        campaign = await self._locked_for(session, campaign_id, viewer)
        if not viewer.owns(campaign):
            raise NotCampaignCreator()
        return campaign

    async def _as_reviewer(self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer) -> Campaign:
        campaign = await self._locked_for(session, campaign_id, viewer)
        if campaign.creator_id == viewer.subject:
            raise SelfReviewForbidden()
        return campaign

    # -- creator -------------------------------------------------------------------------------------------

    async def submit(
        self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer, settings: Settings, reason: str | None
    ) -> schemas.CampaignStatusChange:
        campaign = await self._as_creator(session, campaign_id, viewer)
        if next_status(campaign.status, CampaignAction.SUBMIT) is None:
            raise TransitionNotAllowed(campaign.status, CampaignAction.SUBMIT)
        missing = await self.missing_for_submission(session, campaign, settings)
        if missing:
            raise SubmissionIncomplete(missing)
        change = await self.transition(
            session,
            campaign,
            CampaignAction.SUBMIT,
            actor_id=viewer.subject or "",
            actor_role=ActorRole.CREATOR,
            reason=reason,
        )
        campaign.submitted_at = change.changed_at
        return change

    async def missing_for_submission(
        self, session: AsyncSession, campaign: Campaign, settings: Settings
    ) -> list[dict[str, Any]]:
        """Everything that keeps a campaign from review, all at once (not one error per attempt)."""
        missing: list[dict[str, Any]] = []

        def need(field: str, message: str) -> None:
            missing.append({"field": field, "message": message})

        if not campaign.description.strip():
            need("description", "Describe the project.")
        if not (campaign.risks_and_challenges or "").strip():
            need("risks_and_challenges", "Explain the risks and challenges backers should know about.")
        if campaign.cap_amount is None and not campaign.uncapped:
            need("cap_amount", "Decide a funding cap, or state explicitly that there is none (`uncapped: true`).")
        elif campaign.cap_amount is not None and campaign.cap_amount < campaign.goal_amount:
            need("cap_amount", "The cap must be at least the goal.")
        if not campaign.budget:
            need("budget", "Add at least one budget line.")
        deadline_problem = self.deadline_problem(campaign.deadline_at, settings)
        if deadline_problem:
            need("deadline_at", deadline_problem)
        if await TierRepository(session).count_for_campaign(campaign.id) == 0:
            need("tiers", "Add at least one reward tier.")
        return missing

    @staticmethod
    def deadline_problem(deadline_at: datetime | None, settings: Settings) -> str | None:
        if deadline_at is None:
            return "Set a deadline."
        now = utcnow()
        earliest = now + timedelta(seconds=settings.min_campaign_duration_seconds)
        latest = now + timedelta(seconds=settings.max_campaign_duration_seconds)
        if not earliest <= deadline_at <= latest:
            return (
                f"The deadline must be between {settings.min_campaign_duration_seconds} seconds and "
                f"{settings.max_campaign_duration_seconds} seconds from now."
            )
        return None

    async def launch(
        self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer, settings: Settings
    ) -> schemas.CampaignStatusChange:
        campaign = await self._as_creator(session, campaign_id, viewer)
        if next_status(campaign.status, CampaignAction.LAUNCH) is None:
            raise TransitionNotAllowed(campaign.status, CampaignAction.LAUNCH)
        problem = self.deadline_problem(campaign.deadline_at, settings)
        if problem:
            raise DeadlineOutOfRange(f"{problem} Edit the deadline (the campaign then goes back to review).")
        change = await self.transition(
            session, campaign, CampaignAction.LAUNCH, actor_id=viewer.subject or "", actor_role=ActorRole.CREATOR
        )
        campaign.launched_at = change.changed_at
        return change

    async def cancel(
        self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer, reason: str | None
    ) -> schemas.CampaignStatusChange:
        campaign = await self._locked_for(session, campaign_id, viewer)
        if viewer.owns(campaign):
            role = ActorRole.CREATOR
        elif viewer.is_operator:
            role = ActorRole.OPERATOR
        else:
            raise NotCampaignCreator()
        was_launched = campaign.launched_at is not None
        change = await self.transition(
            session, campaign, CampaignAction.CANCEL, actor_id=viewer.subject or "", actor_role=role, reason=reason
        )
        campaign.closed_at = change.changed_at
        if was_launched:
            # Pledges may exist: the pledges service cancels them (and refunds a flexible campaign's payments).
            await publish(session, OutboxEvent, CAMPAIGN_CLOSED, closed_event_payload(campaign))
        return change

    # -- operators -----------------------------------------------------------------------------------------

    async def start_review(
        self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer
    ) -> schemas.CampaignStatusChange:
        campaign = await self._as_reviewer(session, campaign_id, viewer)
        change = await self.transition(
            session, campaign, CampaignAction.START_REVIEW, actor_id=viewer.subject or "", actor_role=ActorRole.OPERATOR
        )
        campaign.review_round += 1
        return change

    async def record_checklist_item(
        self,
        session: AsyncSession,
        campaign_id: uuid.UUID,
        item: ChecklistItemKind,
        data: schemas.ChecklistEntryUpdate,
        viewer: Viewer,
    ) -> ChecklistEntry:
        campaign = await self._as_reviewer(session, campaign_id, viewer)
        if campaign.status is not CampaignStatus.IN_REVIEW:
            raise ReviewNotInProgress(campaign.status)
        entry = await ChecklistRepository(session).upsert(
            {
                "id": uuid.uuid4(),
                "campaign_id": campaign.id,
                "review_round": campaign.review_round,
                "item": item,
                "result": data.result,
                "note": data.note,
                "reviewer_id": viewer.subject,
                "recorded_at": utcnow(),
            }
        )
        await audit_service.record(
            session,
            campaign.id,
            AuditAction.CHECKLIST_RECORDED,
            actor_id=viewer.subject or "",
            actor_role=ActorRole.OPERATOR,
            details={"item": item.value, "result": data.result.value, "review_round": campaign.review_round},
        )
        return entry

    async def decide(
        self,
        session: AsyncSession,
        campaign_id: uuid.UUID,
        action: CampaignAction,
        viewer: Viewer,
        reason: str | None,
    ) -> schemas.CampaignStatusChange:
        """approve, request changes, reject, suspend, reinstate: operator decisions on someone else's campaign."""
        campaign = await self._as_reviewer(session, campaign_id, viewer)
        if action is CampaignAction.APPROVE and next_status(campaign.status, action) is not None:
            entries = await ChecklistRepository(session).for_round(campaign.id, campaign.review_round)
            results = {entry.item: entry.result for entry in entries}
            missing = [item.value for item in ChecklistItemKind if item not in results]
            failed = [item.value for item, result in results.items() if result is not ChecklistResult.PASSED]
            if missing or failed:
                raise ChecklistIncomplete(missing, failed)
        change = await self.transition(
            session, campaign, action, actor_id=viewer.subject or "", actor_role=ActorRole.OPERATOR, reason=reason
        )
        if action in (CampaignAction.APPROVE, CampaignAction.REQUEST_CHANGES, CampaignAction.REJECT):
            campaign.reviewed_at = change.changed_at
        return change

    async def checklist(self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer) -> schemas.ReviewChecklist:
        campaign = await CampaignRepository(session).get_visible(campaign_id, viewer)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        entries = await ChecklistRepository(session).for_round(campaign.id, campaign.review_round)
        recorded = {entry.item for entry in entries}
        return schemas.ReviewChecklist(
            campaign_id=campaign.id,
            review_round=campaign.review_round,
            entries=[schemas.ChecklistEntry.model_validate(entry) for entry in entries],
            missing_items=[item for item in ChecklistItemKind if item not in recorded],
        )

    async def review_queue(self, session: AsyncSession, *, limit: int) -> Sequence[Campaign]:
        return await CampaignRepository(session).review_queue(limit=limit)

    async def record(self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer) -> schemas.VettingRecord:
        campaign = await CampaignRepository(session).get_visible(campaign_id, viewer)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        entries = await ChecklistRepository(session).for_round(campaign.id, campaign.review_round)
        transitions = await VettingHistoryRepository(session).transitions(campaign.id)
        feedback = None
        if viewer.sees_everything(campaign):
            decisions = [
                t for t in transitions if t.to_status in (CampaignStatus.CHANGES_REQUESTED, CampaignStatus.REJECTED)
            ]
            feedback = decisions[-1].reason if decisions else None
        return schemas.VettingRecord(
            campaign_id=campaign.id,
            status=campaign.status,
            submitted_at=campaign.submitted_at,
            reviewed_at=campaign.reviewed_at,
            review_round=campaign.review_round,
            checks=[
                schemas.VettingCheck(
                    item=entry.item,
                    result=entry.result,
                    checked_by_role=ActorRole.OPERATOR,
                    recorded_at=entry.recorded_at,
                )
                for entry in entries
            ],
            history=[
                schemas.VettingEvent(
                    from_status=t.from_status, to_status=t.to_status, by_role=t.actor_role, at=t.created_at
                )
                for t in transitions
            ],
            feedback=feedback,
        )


vetting_service = VettingService()
