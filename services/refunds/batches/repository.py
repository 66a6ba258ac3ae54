from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, and_, case, func, or_, select, update
from sqlalchemy.engine import CursorResult

from services.refunds.models import (
    OPEN_BATCH_STATUSES,
    BatchAuditEntry,
    BatchStatus,
    ItemStatus,
    PledgeRefundLedger,
    RefundBatch,
    RefundExclusion,
    RefundItem,
)
from shared.auth import Principal
from shared.db import insert_for, table_of, utcnow
from shared.repository import RepositoryBase


def encode_cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode("|".join(str(p) for p in parts).encode()).decode()


def decode_cursor(cursor: str) -> list[str]:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
    except (ValueError, UnicodeDecodeError):
        return []


class RefundBatchRepository(RepositoryBase[RefundBatch]):
    model = RefundBatch

    def visible(self, principal: Principal) -> Select[Any]:
        """Operators see every batch; anyone else only what they created (their single refunds)."""
        statement = select(RefundBatch)
        if not principal.is_operator:
            statement = statement.where(RefundBatch.created_by == principal.subject)
        return statement

    async def get_visible(self, principal: Principal, batch_id: uuid.UUID) -> RefundBatch | None:
        return await self.get_one_or_none(self.visible(principal).where(RefundBatch.id == batch_id))

    async def list_visible(
        self,
        principal: Principal,
        *,
        campaign_id: uuid.UUID | None,
        status: BatchStatus | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[RefundBatch], str | None]:
        statement = self.visible(principal)
        if campaign_id is not None:
            statement = statement.where(RefundBatch.campaign_id == campaign_id)
        if status is not None:
            statement = statement.where(RefundBatch.status == status)
        parts = decode_cursor(cursor) if cursor else []
        if len(parts) == 2:
            created_at, last_id = datetime.fromisoformat(parts[0]), uuid.UUID(parts[1])
            statement = statement.where(
                or_(
                    RefundBatch.created_at < created_at,
                    and_(RefundBatch.created_at == created_at, RefundBatch.id < last_id),
                )
            )
        statement = statement.order_by(RefundBatch.created_at.desc(), RefundBatch.id.desc()).limit(limit + 1)
        rows = list(await self.get_all(statement))
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].created_at.isoformat(), rows[-1].id)
        return rows, next_cursor

    async def transition(
        self, batch_id: uuid.UUID, from_statuses: Iterable[BatchStatus], to_status: BatchStatus, **values: Any
    ) -> bool:
        """Compare-and-set on the status: of two concurrent transitions, exactly one wins."""
        result = cast(
            "CursorResult[Any]",
            await self.session.execute(
                update(RefundBatch)
                .where(RefundBatch.id == batch_id, RefundBatch.status.in_(list(from_statuses)))
                .values(status=to_status, updated_at=utcnow(), **values)
            ),
        )
        return result.rowcount == 1

    async def pledges_in_open_batches(self, campaign_id: uuid.UUID) -> set[uuid.UUID]:
        """Pledges of the campaign that an open batch still has to act on."""
        statement = (
            select(RefundItem.pledge_id)
            .join(RefundBatch, RefundBatch.id == RefundItem.batch_id)
            .where(
                RefundItem.campaign_id == campaign_id,
                RefundItem.status == ItemStatus.QUEUED,
                RefundBatch.status.in_(OPEN_BATCH_STATUSES),
            )
        )
        return set((await self.session.execute(statement)).scalars())

    async def add_items(self, rows: list[dict[str, Any]]) -> None:
        for chunk in _chunks(rows, 1000):
            await self.session.execute(table_of(RefundItem).insert(), chunk)

    async def add_exclusions(self, rows: list[dict[str, Any]]) -> None:
        for chunk in _chunks(rows, 1000):
            await self.session.execute(table_of(RefundExclusion).insert(), chunk)

    async def exclusions(
        self, batch_id: uuid.UUID, *, cursor: str | None, limit: int
    ) -> tuple[Sequence[RefundExclusion], str | None]:
        statement = select(RefundExclusion).where(RefundExclusion.batch_id == batch_id)
        if cursor:
            parts = decode_cursor(cursor)
            if parts:
                statement = statement.where(RefundExclusion.pledge_id > uuid.UUID(parts[0]))
        rows = list(
            (await self.session.execute(statement.order_by(RefundExclusion.pledge_id).limit(limit + 1))).scalars()
        )
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1].pledge_id)
        return rows, next_cursor

    async def item_figures(self, batch_id: uuid.UUID) -> list[tuple[ItemStatus, str, int, int]]:
        statement = (
            select(RefundItem.status, RefundItem.currency, func.count(), func.coalesce(func.sum(RefundItem.amount), 0))
            .where(RefundItem.batch_id == batch_id)
            .group_by(RefundItem.status, RefundItem.currency)
        )
        return [(ItemStatus(s), c, int(n), int(a)) for s, c, n, a in (await self.session.execute(statement)).all()]

    async def recent_and_flagged(self, batch_id: uuid.UUID, since: datetime) -> tuple[int, int]:
        statement = select(
            func.coalesce(func.sum(case((RefundItem.finished_at >= since, 1), else_=0)), 0),
            func.coalesce(func.sum(case((RefundItem.follow_up_required.is_(True), 1), else_=0)), 0),
        ).where(RefundItem.batch_id == batch_id)
        recent, flagged = (await self.session.execute(statement)).one()
        return int(recent), int(flagged)

    async def stream_items(self, batch_id: uuid.UUID, page_size: int = 2000) -> AsyncIterator[Sequence[RefundItem]]:
        last_seq = -1
        while True:
            statement = (
                select(RefundItem)
                .where(RefundItem.batch_id == batch_id, RefundItem.seq > last_seq)
                .order_by(RefundItem.seq)
                .limit(page_size)
            )
            rows = (await self.session.execute(statement)).scalars().all()
            if not rows:
                return
            yield rows
            last_seq = rows[-1].seq

    async def cancel_unclaimed_items(self, batch_id: uuid.UUID) -> int:
        """Items of a canceled batch that no worker holds become `canceled`; their ledger commitment goes back."""
        now = utcnow()
        free = and_(
            RefundItem.batch_id == batch_id,
            RefundItem.status == ItemStatus.QUEUED,
            or_(RefundItem.lease_expires_at.is_(None), RefundItem.lease_expires_at < now),
        )
        reserved = (
            await self.session.execute(
                select(RefundItem.pledge_id, RefundItem.amount).where(free, RefundItem.ledger_reserved.is_(True))
            )
        ).all()
        result = cast(
            "CursorResult[Any]",
            await self.session.execute(
                update(RefundItem)
                .where(free)
                .values(
                    status=ItemStatus.CANCELED,
                    ledger_reserved=False,
                    finished_at=now,
                    updated_at=now,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            ),
        )
        await LedgerRepository(self.session).release([(p, a) for p, a in reserved])
        return int(result.rowcount or 0)


class AuditRepository(RepositoryBase[BatchAuditEntry]):
    """Append-only: entries are inserted and read, never updated or deleted."""

    model = BatchAuditEntry

    async def list_for_batch(self, batch_id: uuid.UUID, *, limit: int, offset: int) -> Sequence[BatchAuditEntry]:
        statement = (
            select(BatchAuditEntry)
            .where(BatchAuditEntry.batch_id == batch_id)
            .order_by(BatchAuditEntry.created_at, BatchAuditEntry.id)
            .limit(limit)
            .offset(offset)
        )
        return await self.get_all(statement)


class LedgerRepository(RepositoryBase[PledgeRefundLedger]):
    model = PledgeRefundLedger

    async def ensure(self, rows: list[dict[str, Any]]) -> None:
        """Open a ledger line for pledges seen for the first time (what was already refunded counts as
        committed). A pledge already known keeps its own running commitment; the charged amount only grows."""
        if not rows:
            return
        # One statement, compiled once (and cached), run for every row (executemany): not a multi-row VALUES,
        # whose compilation grows with its rows - 500-row chunks cost ~0.1 s of the event loop each.
        ledger = table_of(PledgeRefundLedger)
        statement = insert_for(self.session)(ledger)
        greatest = func.max if self.session.get_bind().dialect.name == "sqlite" else func.greatest
        statement = statement.on_conflict_do_update(
            index_elements=["pledge_id"],
            set_={
                "charged_amount": greatest(ledger.c.charged_amount, statement.excluded.charged_amount),
                "updated_at": statement.excluded.updated_at,
            },
        )
        for chunk in _chunks(rows, 1000):
            await self.session.execute(statement, chunk)

    async def reserve(self, pledge_id: uuid.UUID, amount: int) -> bool:
        """Commit ``amount`` to this pledge's refunds unless it would go beyond what was charged."""
        result = cast(
            "CursorResult[Any]",
            await self.session.execute(
                update(PledgeRefundLedger)
                .where(
                    PledgeRefundLedger.pledge_id == pledge_id,
                    PledgeRefundLedger.committed_amount + amount <= PledgeRefundLedger.charged_amount,
                )
                .values(committed_amount=PledgeRefundLedger.committed_amount + amount, updated_at=utcnow())
            ),
        )
        return result.rowcount == 1

    async def reserve_items(self, item_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
        """Commit each item's amount to its pledge's ledger, in one statement, where it fits under what was
        charged. Returns the items reserved (a claim never holds two items of one pledge: one batch, unique)."""
        amount = (
            select(RefundItem.amount)
            .where(RefundItem.id.in_(list(item_ids)), RefundItem.pledge_id == PledgeRefundLedger.pledge_id)
            .scalar_subquery()
        )
        result = await self.session.execute(
            update(PledgeRefundLedger)
            .where(
                PledgeRefundLedger.pledge_id.in_(select(RefundItem.pledge_id).where(RefundItem.id.in_(list(item_ids)))),
                PledgeRefundLedger.committed_amount + amount <= PledgeRefundLedger.charged_amount,
            )
            .values(committed_amount=PledgeRefundLedger.committed_amount + amount, updated_at=utcnow())
            .returning(PledgeRefundLedger.pledge_id)
        )
        pledges = set(result.scalars())
        rows = await self.session.execute(
            select(RefundItem.id, RefundItem.pledge_id).where(RefundItem.id.in_(list(item_ids)))
        )
        return [item_id for item_id, pledge_id in rows.all() if pledge_id in pledges]

    async def release(self, commitments: Sequence[tuple[uuid.UUID, int]]) -> None:
        now = utcnow()
        for pledge_id, amount in commitments:
            await self.session.execute(
                update(PledgeRefundLedger)
                .where(PledgeRefundLedger.pledge_id == pledge_id)
                .values(
                    committed_amount=func.max(PledgeRefundLedger.committed_amount - amount, 0)
                    if self.session.get_bind().dialect.name == "sqlite"
                    else func.greatest(PledgeRefundLedger.committed_amount - amount, 0),
                    updated_at=now,
                )
            )


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]
