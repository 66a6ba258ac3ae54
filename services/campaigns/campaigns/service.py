from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.audit.service import audit_service
from services.campaigns.campaigns import schemas
from services.campaigns.campaigns.exceptions import CampaignNotEditable, CampaignNotFound, FieldLocked
from services.campaigns.campaigns.repository import CampaignRepository
from services.campaigns.disclosure.service import funding_figures, policy_of
from services.campaigns.etag import check_if_match
from services.campaigns.lifecycle import CampaignAction, allowed_actions, capabilities
from services.campaigns.models import ActorRole, AuditAction, Campaign, CampaignStatus
from services.campaigns.refund_totals.service import refund_total_service
from services.campaigns.vetting.exceptions import NotCampaignCreator
from services.campaigns.vetting.service import vetting_service
from shared.db import utcnow
from shared.errors import UnprocessableContent

log = structlog.get_logger("campaigns.campaigns")

# A change to one of these in an approved (not yet live) campaign sends it back to review.
MATERIAL_FIELDS = frozenset(
    {"goal_amount", "cap_amount", "uncapped", "funding_model", "deadline_at", "budget", "risks_and_challenges"}
)
# What a live campaign may still change: wording and the disclosure policy, never the money terms.
LIVE_EDITABLE_FIELDS = frozenset({"title", "description", "risks_and_challenges", "disclosure_policy"})
ALWAYS_EDITABLE_FIELDS = frozenset({"disclosure_policy"})


class InvalidCursor(UnprocessableContent):
    code = "invalid_cursor"


def encode_cursor(sort: schemas.CampaignSort, at: datetime, campaign_id: uuid.UUID) -> str:
    raw = orjson.dumps([sort.value, at.isoformat(), str(campaign_id)])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: schemas.CampaignSort) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        kind, at, campaign_id = orjson.loads(base64.urlsafe_b64decode(padded))
        if kind != sort.value:
            raise ValueError("cursor of another sort order")
        return datetime.fromisoformat(at), uuid.UUID(campaign_id)
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this list returned (or belongs to another sort).") from exc


class CampaignService:
    def present(self, campaign: Campaign, viewer: Viewer, refunded: Mapping[uuid.UUID, int]) -> schemas.Campaign:
        """The campaign as ``viewer`` may see it: every figure passes through the disclosure policy.
        ``refunded``: refunded totals by campaign (``refunded_totals``; absent means none)."""
        now = utcnow()
        caps = capabilities(campaign.status)
        return schemas.Campaign(
            id=campaign.id,
            creator_id=campaign.creator_id,
            status=campaign.status,
            revision=campaign.revision,
            title=campaign.title,
            description=campaign.description,
            risks_and_challenges=campaign.risks_and_challenges,
            currency=campaign.currency,
            goal_amount=campaign.goal_amount,
            cap_decision=(
                schemas.CapDecision.UNCAPPED
                if campaign.uncapped
                else schemas.CapDecision.CAPPED
                if campaign.cap_amount is not None
                else schemas.CapDecision.UNDECIDED
            ),
            cap_amount=campaign.cap_amount,
            funding_model=campaign.funding_model,
            deadline_at=campaign.deadline_at,
            budget=[schemas.BudgetLine(**line) for line in campaign.budget],
            budget_total_amount=sum(int(line["cost_amount"]) for line in campaign.budget),
            disclosure_policy=policy_of(campaign),
            funding=funding_figures(campaign, viewer, refunded_amount=refunded.get(campaign.id, 0)),
            accepts_pledges=caps.accepts_pledges and campaign.deadline_at is not None and campaign.deadline_at > now,
            allowed_actions=allowed_actions(campaign.status),
            created_at=campaign.created_at,
            updated_at=campaign.updated_at,
            submitted_at=campaign.submitted_at,
            reviewed_at=campaign.reviewed_at,
            launched_at=campaign.launched_at,
            closed_at=campaign.closed_at,
        )

    async def refunded_totals(
        self, session: AsyncSession, viewer: Viewer, campaigns: Sequence[Campaign]
    ) -> dict[uuid.UUID, int]:
        """What ``present`` needs for these campaigns: read only for those whose exact figures ``viewer`` sees."""
        return await refund_total_service.visible_totals(session, viewer, campaigns)

    async def create(self, session: AsyncSession, viewer: Viewer, data: schemas.CampaignCreate) -> Campaign:
        if data.deadline_at is not None and data.deadline_at <= utcnow():
            raise UnprocessableContent("The deadline must be in the future.", code="deadline_in_past")
        now = utcnow()
        creator_id = viewer.subject or ""
        campaign = Campaign(
            id=uuid.uuid4(),
            creator_id=creator_id,
            status=CampaignStatus.DRAFT,
            revision=1,
            title=data.title,
            description=data.description,
            risks_and_challenges=data.risks_and_challenges,
            currency=data.currency,
            goal_amount=data.goal_amount,
            cap_amount=data.cap_amount,
            uncapped=data.uncapped,
            funding_model=data.funding_model,
            deadline_at=data.deadline_at,
            budget=[line.model_dump() for line in data.budget],
            amount_disclosure=data.disclosure_policy.amount_raised,
            backer_count_disclosure=data.disclosure_policy.backer_count,
            availability_disclosure=data.disclosure_policy.tier_availability,
            reveal_exact_after_close=data.disclosure_policy.reveal_exact_after_close,
            reserved_amount=0,
            committed_amount=0,
            backer_count=0,
            review_round=0,
            created_at=now,
            updated_at=now,
        )
        await CampaignRepository(session).add(campaign)
        await audit_service.record(
            session,
            campaign.id,
            AuditAction.CREATED,
            actor_id=creator_id,
            actor_role=ActorRole.CREATOR,
            to_status=CampaignStatus.DRAFT,
        )
        log.info("campaign.created", campaign_id=str(campaign.id))
        return campaign

    async def get(self, session: AsyncSession, campaign_id: uuid.UUID, viewer: Viewer) -> Campaign:
        campaign = await CampaignRepository(session).get_visible(campaign_id, viewer)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        return campaign

    async def list(
        self,
        session: AsyncSession,
        viewer: Viewer,
        *,
        statuses: Sequence[CampaignStatus] | None,
        creator_id: str | None,
        sort: schemas.CampaignSort,
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[Campaign], str | None]:
        after = decode_cursor(cursor, sort) if cursor else None
        rows = await CampaignRepository(session).list_visible(
            viewer, statuses=statuses, creator_id=creator_id, sort=sort, after=after, limit=limit + 1
        )
        page, more = rows[:limit], len(rows) > limit
        next_cursor = None
        if more and page:
            last = page[-1]
            key = last.created_at if sort is schemas.CampaignSort.NEWEST else last.deadline_at
            assert key is not None
            next_cursor = encode_cursor(sort, key, last.id)
        return page, next_cursor

    async def update(
        self,
        session: AsyncSession,
        campaign_id: uuid.UUID,
        viewer: Viewer,
        data: schemas.CampaignUpdate,
        if_match: str,
    ) -> Campaign:
        repository = CampaignRepository(session)
        if await repository.get_visible(campaign_id, viewer) is None:
            raise CampaignNotFound(campaign_id)
        campaign = await repository.get_locked(campaign_id)
        if campaign is None:
            raise CampaignNotFound(campaign_id)
        if not viewer.owns(campaign):
            raise NotCampaignCreator()
        check_if_match(if_match, campaign.revision)

        changes = self._changes(campaign, data)
        caps = capabilities(campaign.status)
        if caps.closed:
            raise CampaignNotEditable(campaign.status)
        if campaign.status is CampaignStatus.LIVE:
            editable = LIVE_EDITABLE_FIELDS
        elif caps.terms_editable:
            editable = frozenset(changes) | ALWAYS_EDITABLE_FIELDS
        else:
            editable = ALWAYS_EDITABLE_FIELDS
        locked = [field for field in changes if field not in editable]
        if locked:
            raise FieldLocked(locked, campaign.status)
        if not changes:
            return campaign

        self._apply(campaign, changes)
        if campaign.cap_amount is not None and campaign.cap_amount < campaign.goal_amount:
            raise UnprocessableContent("`cap_amount` must be at least `goal_amount`.", code="cap_below_goal")
        if "deadline_at" in changes and campaign.deadline_at is not None and campaign.deadline_at <= utcnow():
            raise UnprocessableContent("The deadline must be in the future.", code="deadline_in_past")
        campaign.revision += 1
        campaign.updated_at = utcnow()

        material = sorted(MATERIAL_FIELDS.intersection(changes))
        if campaign.status is CampaignStatus.APPROVED and material:
            change = await vetting_service.transition(
                session,
                campaign,
                CampaignAction.RETURN_TO_REVIEW,
                actor_id=viewer.subject or "",
                actor_role=ActorRole.CREATOR,
                reason="Material change after approval",
                details={"fields": material},
            )
            campaign.submitted_at = change.changed_at
        await session.flush()
        log.info("campaign.updated", campaign_id=str(campaign.id), fields=sorted(changes))
        return campaign

    @staticmethod
    def _changes(campaign: Campaign, data: schemas.CampaignUpdate) -> dict[str, Any]:
        """The fields whose value actually changes (sending the current value is not a change)."""
        sent = data.model_fields_set
        changes: dict[str, Any] = {}
        for field in ("title", "description", "risks_and_challenges", "goal_amount", "funding_model", "deadline_at"):
            if field in sent:
                value = getattr(data, field)
                if value is None and field in ("title", "goal_amount", "funding_model", "description"):
                    continue
                if value != getattr(campaign, field):
                    changes[field] = value
        if "budget" in sent and data.budget is not None:
            budget = [line.model_dump() for line in data.budget]
            if budget != campaign.budget:
                changes["budget"] = budget
        if "cap_amount" in sent and data.cap_amount is not None and data.cap_amount != campaign.cap_amount:
            changes["cap_amount"] = data.cap_amount
            if campaign.uncapped:
                changes["uncapped"] = False
        if "uncapped" in sent and data.uncapped is not None and data.uncapped != campaign.uncapped:
            changes["uncapped"] = data.uncapped
            if data.uncapped and campaign.cap_amount is not None:
                changes["cap_amount"] = None
        if "disclosure_policy" in sent and data.disclosure_policy is not None:
            if data.disclosure_policy != policy_of(campaign):
                changes["disclosure_policy"] = data.disclosure_policy
        return changes

    @staticmethod
    def _apply(campaign: Campaign, changes: dict[str, Any]) -> None:
        for field, value in changes.items():
            if field == "disclosure_policy":
                campaign.amount_disclosure = value.amount_raised
                campaign.backer_count_disclosure = value.backer_count
                campaign.availability_disclosure = value.tier_availability
                campaign.reveal_exact_after_close = value.reveal_exact_after_close
            else:
                setattr(campaign, field, value)


campaign_service = CampaignService()
