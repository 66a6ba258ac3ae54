from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select

from services.campaigns.models import AuditEntry
from shared.repository import RepositoryBase


class AuditRepository(RepositoryBase[AuditEntry]):
    """Append-only: entries are inserted and read, never updated or deleted."""

    model = AuditEntry

    async def list_for_campaign(self, campaign_id: uuid.UUID, *, limit: int, offset: int) -> Sequence[AuditEntry]:
        statement = (
            select(AuditEntry)
            .where(AuditEntry.campaign_id == campaign_id)
            .order_by(AuditEntry.created_at, AuditEntry.id)
            .limit(limit)
            .offset(offset)
        )
        return await self.get_all(statement)
