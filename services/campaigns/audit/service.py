from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.audit.repository import AuditRepository
from services.campaigns.models import ActorRole, AuditAction, AuditEntry, Campaign, CampaignStatus
from shared.db import utcnow

log = structlog.get_logger("campaigns.audit")


class AuditService:
    async def record(
        self,
        session: AsyncSession,
        campaign_id: uuid.UUID,
        action: AuditAction,
        *,
        actor_id: str,
        actor_role: ActorRole,
        from_status: CampaignStatus | None = None,
        to_status: CampaignStatus | None = None,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> AuditEntry:
        entry = AuditEntry(
            id=uuid.uuid4(),
            campaign_id=campaign_id,
            action=action,
            actor_id=actor_id,
            actor_role=actor_role,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
            details=details or {},
            created_at=utcnow(),
        )
        return await AuditRepository(session).add(entry, flush=False)

    async def record_exact_reads(
        self, session: AsyncSession, viewer: Viewer, campaigns: Sequence[Campaign], *, route: str
    ) -> int:
        """Add an entry for each campaign whose exact figures this operator is being shown; how many. The
        caller owns the transaction (see ``audit/exact_reads.py``: it must commit before the response)."""
        audited = [campaign for campaign in campaigns if viewer.is_audited_reader(campaign)]
        if not audited or viewer.subject is None:
            return 0
        for campaign in audited:
            await self.record(
                session,
                campaign.id,
                AuditAction.EXACT_FIGURES_READ,
                actor_id=viewer.subject,
                actor_role=ActorRole.OPERATOR,
                details={"route": route},
            )
        log.info("campaign.exact_figures_read", operator=viewer.subject, campaigns=len(audited), route=route)
        return len(audited)

    def needs_exact_reads_record(self, viewer: Viewer, campaigns: Sequence[Campaign]) -> bool:
        return viewer.subject is not None and any(viewer.is_audited_reader(campaign) for campaign in campaigns)

    async def list_for_campaign(
        self, session: AsyncSession, campaign_id: uuid.UUID, *, limit: int, offset: int
    ) -> Sequence[AuditEntry]:
        return await AuditRepository(session).list_for_campaign(campaign_id, limit=limit, offset=offset)


audit_service = AuditService()
