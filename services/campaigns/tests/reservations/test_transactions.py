"""The reservation routes run each statement in its own transaction on PostgreSQL; that must not leak into
the next user of the pooled connection (a vetting transition or a tier edit needs a real transaction)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.campaigns.reservations.transactions import one_statement_per_transaction
from shared.db import Database


async def test_a_connection_goes_back_to_the_pool_transactional(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite keeps the route's transaction: nothing to restore")
    db = Database(database_url, pool_size=1)
    try:
        async with db.write_sessions() as session:
            await one_statement_per_transaction(session)
            await session.execute(text("SELECT 1"))
            first = (await session.connection()).sync_connection.connection.driver_connection  # type: ignore[union-attr]
            assert not first.is_in_transaction()
        async with db.write_sessions() as session:
            await session.execute(text("SELECT 1"))
            second = (await session.connection()).sync_connection.connection.driver_connection  # type: ignore[union-attr]
            assert second is first
            assert second.is_in_transaction()
            await session.rollback()
    finally:
        await db.dispose()
