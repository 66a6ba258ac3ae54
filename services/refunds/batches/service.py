from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.refunds.batches import schemas
from services.refunds.batches.exceptions import (
    BackerRefundNotCancelable,
    BatchTooLarge,
    InvalidBatchState,
    InvalidSelection,
    NotApproved,
    PledgesUnavailable,
    RefundBatchNotFound,
    SecondApproverRequired,
)
from services.refunds.batches.planning import ExclusionReason, PlannedExclusion, PlannedItem, plan
from services.refunds.batches.repository import AuditRepository, LedgerRepository, RefundBatchRepository
from services.refunds.clients import PledgeForRefund, PledgeRefused, PledgesClient
from services.refunds.config import Settings
from services.refunds.models import (
    OPEN_BATCH_STATUSES,
    AuditAction,
    BatchAuditEntry,
    BatchKind,
    BatchStatus,
    ItemAction,
    ItemStatus,
    RefundBatch,
    RefundExclusion,
)
from shared.auth import Principal, Role
from shared.db import utcnow
from shared.http import UpstreamUnavailable

log = structlog.get_logger("refunds.batches")

DONE_STATUSES = (ItemStatus.PENDING, ItemStatus.SUCCEEDED, ItemStatus.FAILED, ItemStatus.CANCELED)


def idempotency_key_for(item_id: uuid.UUID) -> str:
    """The Stripe idempotency key of an item: derived from our row, stored with it before any call."""
    return f"refund:{item_id}"


def actor_role(principal: Principal) -> str:
    if principal.is_service:
        return Role.SERVICE.value
    return Role.OPERATOR.value if principal.is_operator else ",".join(sorted(principal.roles))


class RefundBatchService:
    # -- creation ---------------------------------------------------------------------------------------------

    async def select_pledges(
        self, pledges: PledgesClient, data: schemas.RefundBatchCreate, settings: Settings
    ) -> tuple[list[PledgeForRefund], list[PlannedExclusion]]:
        """Ask the pledges service for the selected pledges. No database work happens meanwhile."""
        selection = data.selection
        found: list[PledgeForRefund] = []
        missing: list[PlannedExclusion] = []
        try:
            if isinstance(selection, schemas.SelectPledges):
                semaphore = asyncio.Semaphore(settings.preview_fetch_concurrency)

                async def fetch(pledge_id: uuid.UUID) -> PledgeForRefund | None:
                    async with semaphore:
                        return await pledges.get_pledge(pledge_id)

                results = await asyncio.gather(*(fetch(p) for p in selection.pledge_ids))
                for pledge_id, pledge in zip(selection.pledge_ids, results, strict=True):
                    if pledge is None:
                        missing.append(PlannedExclusion(pledge_id, ExclusionReason.NOT_FOUND, "No such pledge."))
                    else:
                        found.append(pledge)
            else:
                filters: dict[str, Any] = {}
                if isinstance(selection, schemas.SelectFilter):
                    filters = {
                        "tier_id": selection.tier_id,
                        "status": selection.status,
                        "created_from": selection.created_from.isoformat() if selection.created_from else None,
                        "created_to": selection.created_to.isoformat() if selection.created_to else None,
                    }
                async for page in pledges.iter_campaign_pledges(data.campaign_id, filters):
                    found.extend(page)
                    if len(found) > settings.max_batch_size:
                        raise BatchTooLarge(settings.max_batch_size)
        except PledgeRefused as exc:
            if exc.status in (400, 422):  # the selection itself is invalid (e.g. an unknown pledge status)
                raise InvalidSelection(exc.detail) from exc
            log.warning("refund.batch.pledges_unavailable", error=str(exc))
            raise PledgesUnavailable() from exc
        except UpstreamUnavailable as exc:
            log.warning("refund.batch.pledges_unavailable", error=str(exc))
            raise PledgesUnavailable() from exc
        return found, missing

    async def create(
        self,
        session: AsyncSession,
        principal: Principal,
        data: schemas.RefundBatchCreate,
        pledges: list[PledgeForRefund],
        missing: list[PlannedExclusion],
        settings: Settings,
        *,
        kind: BatchKind = BatchKind.BATCH,
        auto_start: bool = False,
    ) -> RefundBatch:
        repository = RefundBatchRepository(session)
        busy = await repository.pledges_in_open_batches(data.campaign_id)
        planned: list[PlannedItem] = []
        exclusions: list[PlannedExclusion] = list(missing)
        for pledge in pledges:
            outcome = plan(pledge, data.amount_rule, data.campaign_id, in_other_batch=pledge.pledge_id in busy)
            if isinstance(outcome, PlannedItem):
                planned.append(outcome)
            else:
                exclusions.append(outcome)
        if len(planned) > settings.max_batch_size:
            raise BatchTooLarge(settings.max_batch_size)

        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for item in planned:
            if item.action is ItemAction.REFUND:
                figures = totals[item.pledge.currency.upper()]
                figures[0] += item.amount
                figures[1] += 1
        exclusion_counts: dict[str, int] = defaultdict(int)
        for exclusion in exclusions:
            exclusion_counts[exclusion.reason] += 1
        requires_second = any(amount > settings.approval_threshold(cur) for cur, (amount, _) in totals.items())

        now = utcnow()
        batch = RefundBatch(
            id=uuid.uuid4(),
            kind=kind,
            campaign_id=data.campaign_id,
            status=BatchStatus.PREVIEW,
            reason=data.reason,
            stripe_reason=data.stripe_reason,
            selection=data.selection.model_dump(mode="json"),
            amount_rule=data.amount_rule.model_dump(mode="json"),
            totals=[{"currency": c, "amount": a, "count": n} for c, (a, n) in sorted(totals.items())],
            exclusion_counts=dict(exclusion_counts),
            item_count=len(planned),
            cancel_count=sum(1 for i in planned if i.action is ItemAction.CANCEL_PLEDGE),
            requires_second_approval=requires_second,
            created_by=principal.subject,
            created_by_role=actor_role(principal),
            created_at=now,
            updated_at=now,
        )
        if auto_start and not requires_second:
            batch.status = BatchStatus.RUNNING
            batch.approved_by = principal.subject
            batch.approved_at = now
            batch.started_at = now
        session.add(batch)
        await session.flush()

        item_rows = []
        for seq, item in enumerate(planned):
            item_id = uuid.uuid4()
            pledge = item.pledge
            item_rows.append(
                {
                    "id": item_id,
                    "batch_id": batch.id,
                    "seq": seq,
                    "campaign_id": pledge.campaign_id,
                    "pledge_id": pledge.pledge_id,
                    "backer_id": pledge.backer_id,
                    "action": item.action,
                    "currency": pledge.currency.upper(),
                    "amount": item.amount,
                    "charged_amount": pledge.charged_amount,
                    "stripe_payment_intent_id": pledge.stripe_payment_intent_id,
                    "status": ItemStatus.QUEUED,
                    "idempotency_key": idempotency_key_for(item_id),
                    "next_attempt_at": now,
                    "attempts": 0,
                    "ledger_reserved": False,
                    "follow_up_required": False,
                    "report_due": False,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        await repository.add_items(item_rows)
        await repository.add_exclusions(
            [
                {
                    "id": uuid.uuid4(),
                    "batch_id": batch.id,
                    "pledge_id": e.pledge_id,
                    "reason": e.reason,
                    "detail": e.detail,
                    "created_at": now,
                }
                for e in exclusions
            ]
        )
        await LedgerRepository(session).ensure(
            [
                {
                    "pledge_id": i.pledge.pledge_id,
                    "currency": i.pledge.currency.upper(),
                    "charged_amount": i.pledge.charged_amount,
                    "committed_amount": min(i.pledge.refunded_amount, i.pledge.charged_amount),
                    "updated_at": now,
                }
                for i in planned
                if i.action is ItemAction.REFUND
            ]
        )
        await self.audit(
            session,
            batch.id,
            AuditAction.CREATED,
            principal,
            {
                "kind": kind.value,
                "reason": data.reason,
                "item_count": batch.item_count,
                "totals": batch.totals,
                "exclusions": batch.exclusion_counts,
                "requires_second_approval": requires_second,
            },
        )
        if batch.status is BatchStatus.RUNNING:
            await self.audit(session, batch.id, AuditAction.APPROVED, principal, {"automatic": True})
            await self.audit(session, batch.id, AuditAction.STARTED, principal, {"automatic": True})
        log.info(
            "refund.batch.created",
            batch_id=str(batch.id),
            kind=kind.value,
            items=batch.item_count,
            excluded=len(exclusions),
            operator=principal.subject,
        )
        return batch

    # -- reads ------------------------------------------------------------------------------------------------

    async def get(self, session: AsyncSession, principal: Principal, batch_id: uuid.UUID) -> RefundBatch:
        batch = await RefundBatchRepository(session).get_visible(principal, batch_id)
        if batch is None:
            raise RefundBatchNotFound(batch_id)
        return batch

    async def list(
        self,
        session: AsyncSession,
        principal: Principal,
        *,
        campaign_id: uuid.UUID | None,
        status: BatchStatus | None,
        cursor: str | None,
        limit: int,
    ) -> tuple[Sequence[RefundBatch], str | None]:
        return await RefundBatchRepository(session).list_visible(
            principal, campaign_id=campaign_id, status=status, cursor=cursor, limit=limit
        )

    async def exclusions(
        self, session: AsyncSession, batch_id: uuid.UUID, *, cursor: str | None, limit: int
    ) -> tuple[Sequence[RefundExclusion], str | None]:
        return await RefundBatchRepository(session).exclusions(batch_id, cursor=cursor, limit=limit)

    async def progress(self, session: AsyncSession, batch: RefundBatch, settings: Settings) -> schemas.Progress:
        repository = RefundBatchRepository(session)
        figures = await repository.item_figures(batch.id)
        now = utcnow()
        window = timedelta(seconds=settings.progress_window_seconds)
        recent, flagged = await repository.recent_and_flagged(batch.id, now - window)

        by_status: dict[ItemStatus, schemas.StatusFigures] = {}
        refunded: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        total = done = queued = 0
        for status, currency, count, amount in figures:
            entry = by_status.setdefault(status, schemas.StatusFigures(status=status, count=0, amounts=[]))
            entry.count += count
            entry.amounts.append(schemas.CurrencyTotal(currency=currency, amount=amount, count=count))
            total += count
            if status is ItemStatus.QUEUED:
                queued += count
            else:
                done += count
            if status in (ItemStatus.SUCCEEDED, ItemStatus.PENDING):
                refunded[currency][0] += amount
                refunded[currency][1] += count

        rate = 0.0
        if batch.started_at is not None and recent:
            elapsed = (now - batch.started_at).total_seconds()
            rate = recent / max(1.0, min(window.total_seconds(), elapsed))
        eta: float | None
        if queued == 0:
            eta = 0.0
        elif batch.status is BatchStatus.RUNNING and rate > 0:
            eta = queued / rate
        else:
            eta = None
        return schemas.Progress(
            by_status=[by_status[s] for s in ItemStatus if s in by_status],
            total_items=total,
            done_items=done,
            queued_items=queued,
            follow_up_items=flagged,
            refunded_amounts=[
                schemas.CurrencyTotal(currency=c, amount=a, count=n) for c, (a, n) in sorted(refunded.items())
            ],
            rate_per_second=round(rate, 2),
            eta_seconds=None if eta is None else round(eta, 1),
            percent_done=round(100.0 * done / total, 2) if total else 100.0,
        )

    async def present(
        self, session: AsyncSession, batch: RefundBatch, settings: Settings, *, with_progress: bool = True
    ) -> schemas.RefundBatch:
        view = schemas.RefundBatch.model_validate(batch)
        if with_progress:
            view.progress = await self.progress(session, batch, settings)
        return view

    # -- transitions ------------------------------------------------------------------------------------------

    async def approve(
        self, session: AsyncSession, principal: Principal, batch_id: uuid.UUID, note: str | None
    ) -> RefundBatch:
        batch = await self.get(session, principal, batch_id)
        if batch.requires_second_approval and batch.created_by == principal.subject:
            raise SecondApproverRequired()
        now = utcnow()
        await self._transition(
            session,
            batch,
            "approved",
            [BatchStatus.PREVIEW],
            BatchStatus.APPROVED,
            approved_by=principal.subject,
            approved_at=now,
        )
        await self.audit(session, batch.id, AuditAction.APPROVED, principal, _note(note))
        return batch

    async def start(
        self, session: AsyncSession, principal: Principal, batch_id: uuid.UUID, note: str | None
    ) -> RefundBatch:
        batch = await self.get(session, principal, batch_id)
        if batch.status is BatchStatus.PREVIEW:
            raise NotApproved()
        await self._transition(
            session, batch, "started", [BatchStatus.APPROVED], BatchStatus.RUNNING, started_at=utcnow()
        )
        await self.audit(session, batch.id, AuditAction.STARTED, principal, _note(note))
        return batch

    async def pause(
        self, session: AsyncSession, principal: Principal, batch_id: uuid.UUID, note: str | None
    ) -> RefundBatch:
        batch = await self.get(session, principal, batch_id)
        await self._transition(session, batch, "paused", [BatchStatus.RUNNING], BatchStatus.PAUSED, paused_at=utcnow())
        await self.audit(session, batch.id, AuditAction.PAUSED, principal, _note(note))
        return batch

    async def resume(
        self, session: AsyncSession, principal: Principal, batch_id: uuid.UUID, note: str | None
    ) -> RefundBatch:
        batch = await self.get(session, principal, batch_id)
        await self._transition(session, batch, "resumed", [BatchStatus.PAUSED], BatchStatus.RUNNING, paused_at=None)
        await self.audit(session, batch.id, AuditAction.RESUMED, principal, _note(note))
        return batch

    async def cancel(
        self, session: AsyncSession, principal: Principal, batch_id: uuid.UUID, note: str | None
    ) -> RefundBatch:
        batch = await self.get(session, principal, batch_id)
        if batch.kind is BatchKind.BACKER:
            raise BackerRefundNotCancelable()
        await self._transition(
            session,
            batch,
            "canceled",
            OPEN_BATCH_STATUSES,
            BatchStatus.CANCELED,
            canceled_by=principal.subject,
            canceled_at=utcnow(),
        )
        # Items a worker holds right now finish (what is sent stands); the rest will never be sent.
        canceled = await RefundBatchRepository(session).cancel_unclaimed_items(batch.id)
        await self.audit(
            session, batch.id, AuditAction.CANCELED, principal, {**_note(note), "items_canceled": canceled}
        )
        return batch

    async def _transition(
        self,
        session: AsyncSession,
        batch: RefundBatch,
        action: str,
        from_statuses: Sequence[BatchStatus],
        to_status: BatchStatus,
        **values: Any,
    ) -> None:
        if batch.status not in from_statuses or not await RefundBatchRepository(session).transition(
            batch.id, from_statuses, to_status, **values
        ):
            await session.refresh(batch)
            raise InvalidBatchState(action, batch.status.value)
        await session.refresh(batch)
        log.info(f"refund.batch.{action}", batch_id=str(batch.id))

    async def audit(
        self,
        session: AsyncSession,
        batch_id: uuid.UUID,
        action: AuditAction,
        principal: Principal | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        session.add(
            BatchAuditEntry(
                id=uuid.uuid4(),
                batch_id=batch_id,
                action=action,
                actor_id=principal.subject if principal else "system",
                actor_role=actor_role(principal) if principal else "system",
                details=details or {},
                created_at=utcnow(),
            )
        )

    async def audit_log(
        self, session: AsyncSession, batch_id: uuid.UUID, *, limit: int, offset: int
    ) -> Sequence[BatchAuditEntry]:
        return await AuditRepository(session).list_for_batch(batch_id, limit=limit, offset=offset)


def _note(note: str | None) -> dict[str, Any]:
    return {"note": note} if note else {}


refund_batch_service = RefundBatchService()
