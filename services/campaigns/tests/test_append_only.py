"""The database itself refuses to rewrite history: audit entries and tier versions cannot be changed."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError

from services.campaigns.models import AuditEntry, TierVersion
from services.campaigns.tests.factories import Actors, create_campaign, create_tier
from shared.db import Database


@pytest.mark.parametrize(
    "statement",
    [
        update(AuditEntry).values(reason="rewritten"),
        delete(AuditEntry),
        update(TierVersion).values(price_amount=1),
    ],
    ids=["update audit entry", "delete audit entry", "update tier version"],
)
async def test_history_cannot_be_rewritten(
    client: httpx.AsyncClient, actors: Actors, database_url: str, statement: object
) -> None:
    campaign = await create_campaign(client, actors)
    await create_tier(client, actors, campaign["id"])
    db = Database(database_url)
    try:
        async with db.write_sessions() as session:
            with pytest.raises(DBAPIError, match=r"append-only|immutable"):
                await session.execute(statement)  # type: ignore[call-overload]
            await session.rollback()
    finally:
        await db.dispose()
