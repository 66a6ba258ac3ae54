"""The reservation routes run each statement in its own transaction on PostgreSQL; that must not leak into
the next user of the pooled connection (a vetting transition or a tier edit needs a real transaction)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.reservations.transactions import one_statement_per_transaction
from shared.db import Database


async def _driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection under the session's pooled connection."""
    sync_connection = (await session.connection()).sync_connection
    assert sync_connection is not None
    driver_connection = sync_connection.connection.driver_connection
    assert driver_connection is not None
    return driver_connection


async def test_a_connection_goes_back_to_the_pool_transactional(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite keeps the route's transaction: nothing to restore")
    db = Database(database_url, pool_size=1)
    try:
        async with db.write_sessions() as session:
            await one_statement_per_transaction(session)
            await session.execute(text("SELECT 1"))
            first = await _driver_connection(session)
            assert not first.is_in_transaction()
        async with db.write_sessions() as session:
            await session.execute(text("SELECT 1"))
            second = await _driver_connection(session)
            assert second is first
            assert second.is_in_transaction()
            await session.rollback()
    finally:
        await db.dispose()
