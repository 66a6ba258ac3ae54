"""The refund ledger's lines, opened when batches are planned: what was charged only grows, and a pledge
already known keeps its own running commitment."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from services.refunds.batches.repository import LedgerRepository
from services.refunds.models import PledgeRefundLedger
from shared.db import Database, utcnow


async def test_ensure_opens_new_lines_and_keeps_the_commitment_of_known_ones(database_url: str) -> None:
    db = Database(database_url)
    known, new = uuid.uuid4(), [uuid.uuid4() for _ in range(1_500)]  # more than one chunk
    now = utcnow()

    def line(pledge_id: uuid.UUID, charged: int, committed: int) -> dict[str, object]:
        return {
            "pledge_id": pledge_id,
            "currency": "USD",
            "charged_amount": charged,
            "committed_amount": committed,
            "updated_at": now,
        }

    try:
        async with db.write_sessions() as session:
            await LedgerRepository(session).ensure([line(known, 5_000, 0)])
            assert await LedgerRepository(session).reserve(known, 3_000)
            await session.commit()
        async with db.write_sessions() as session:
            # Seen again by a later batch: charged more since (it only grows), with an older view of what
            # was refunded - the commitment made meanwhile stays.
            await LedgerRepository(session).ensure([line(known, 7_000, 1_000)] + [line(p, 2_000, 500) for p in new])
            await session.commit()
        async with db.write_sessions() as session:
            await LedgerRepository(session).ensure([line(known, 4_000, 0)])  # a stale, smaller charge
            await session.commit()
        async with db.read_sessions() as session:
            rows = {r.pledge_id: r for r in (await session.execute(select(PledgeRefundLedger))).scalars()}
    finally:
        await db.dispose()
    assert len(rows) == 1 + len(new)
    assert (rows[known].charged_amount, rows[known].committed_amount) == (7_000, 3_000)
    assert all((rows[p].charged_amount, rows[p].committed_amount) == (2_000, 500) for p in new)
