from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.audit.repository import AuditRepository
from services.campaigns.models import ActorRole, AuditAction, AuditEntry, Campaign, CampaignStatus
from shared.db import Database, utcnow

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
        self, db: Database, viewer: Viewer, campaigns: Sequence[Campaign], *, route: str
    ) -> None:
        """Record that an operator was shown exact figures. GET routes run in a read-only transaction, so this
        is its own short write transaction, committed before the response leaves: no record, no figures."""
        audited = [campaign for campaign in campaigns if viewer.is_audited_reader(campaign)]
        if not audited or viewer.subject is None:
            return
        async with db.write_sessions() as session:
            for campaign in audited:
                await self.record(
                    session,
                    campaign.id,
                    AuditAction.EXACT_FIGURES_READ,
                    actor_id=viewer.subject,
                    actor_role=ActorRole.OPERATOR,
                    details={"route": route},
                )
            await session.commit()
        log.info("campaign.exact_figures_read", operator=viewer.subject, campaigns=len(audited), route=route)

    async def list_for_campaign(
        self, session: AsyncSession, campaign_id: uuid.UUID, *, limit: int, offset: int
    ) -> Sequence[AuditEntry]:
        return await AuditRepository(session).list_for_campaign(campaign_id, limit=limit, offset=offset)


audit_service = AuditService()
