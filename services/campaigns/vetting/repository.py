from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from services.campaigns.models import AuditAction, AuditEntry, ChecklistEntry
from shared.db import insert_for
from shared.repository import RepositoryBase


class ChecklistRepository(RepositoryBase[ChecklistEntry]):
    model = ChecklistEntry

    async def upsert(self, values: dict[str, Any]) -> ChecklistEntry:
        """One row per (campaign, round, item): recording an item again replaces its result and note."""
        insert = insert_for(self.session)
        statement = insert(ChecklistEntry).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["campaign_id", "review_round", "item"],
            set_={
                "result": statement.excluded.result,
                "note": statement.excluded.note,
                "reviewer_id": statement.excluded.reviewer_id,
                "recorded_at": statement.excluded.recorded_at,
            },
        )
        await self.session.execute(statement)
        entry = await self.get_one_or_none(
            select(ChecklistEntry)
            .where(
                ChecklistEntry.campaign_id == values["campaign_id"],
                ChecklistEntry.review_round == values["review_round"],
                ChecklistEntry.item == values["item"],
            )
            .execution_options(populate_existing=True)
        )
        assert entry is not None
        return entry

    async def for_round(self, campaign_id: uuid.UUID, review_round: int) -> Sequence[ChecklistEntry]:
        statement = (
            select(ChecklistEntry)
            .where(ChecklistEntry.campaign_id == campaign_id, ChecklistEntry.review_round == review_round)
            .order_by(ChecklistEntry.recorded_at)
        )
        return await self.get_all(statement)


class VettingHistoryRepository(RepositoryBase[AuditEntry]):
    model = AuditEntry

    async def transitions(self, campaign_id: uuid.UUID) -> Sequence[AuditEntry]:
        statement = (
            select(AuditEntry)
            .where(AuditEntry.campaign_id == campaign_id, AuditEntry.action == AuditAction.TRANSITION)
            .order_by(AuditEntry.created_at, AuditEntry.id)
        )
        return await self.get_all(statement)
