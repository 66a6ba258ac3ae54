"""How the reservation writes meet the database: on PostgreSQL, one statement per transaction.

Every capacity change (reserve, confirm, release, expire) is a single statement that locks, checks and
changes its rows (see ``repository.py``). Run in autocommit, the server commits it as soon as it has run,
so the hot campaign row is locked only for that statement and its commit flush — never across a round trip
to this process and a turn of its event loop, which under a launch rush is where the time went (callers
queued on ``Lock transactionid``). The statements before it in a request are reads.

SQLite keeps the route's transaction: its writers are serialized by ``BEGIN IMMEDIATE`` anyway, and a
refusal rolls back the few statements before it.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


async def one_statement_per_transaction(session: AsyncSession) -> None:
    """Put a fresh session in autocommit on PostgreSQL (a no-op on SQLite). Call it before the session's
    first statement; the connection goes back to the pool with its default isolation level."""
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
