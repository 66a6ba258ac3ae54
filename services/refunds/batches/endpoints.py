"""Operator routes for refund batches (``/v1/refund-batches``): preview, approval, running, progress, audit."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.refunds.batches import schemas
from services.refunds.batches.service import refund_batch_service
from services.refunds.clients import PledgesClient
from services.refunds.config import Settings
from services.refunds.dependencies import get_pledges, get_settings, require_operator, require_reader
from services.refunds.models import BatchStatus
from shared.auth import Principal
from shared.db import INTEGER_MAX
from shared.errors import problem_responses
from shared.idempotency import IDEMPOTENT
from shared.unit_of_work import UnitOfWorkRoute, get_session

router = APIRouter(prefix="/v1/refund-batches", tags=["refund batches"], route_class=UnitOfWorkRoute)


@router.post(
    "",
    response_model=schemas.RefundBatch,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 409, 422, 503),
    openapi_extra=IDEMPOTENT,
)
async def create_refund_batch(
    data: schemas.RefundBatchCreate,
    response: Response,
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(get_session),
    pledges: PledgesClient = Depends(get_pledges),
    settings: Settings = Depends(get_settings),
) -> schemas.RefundBatch:
    """Create a refund batch as a **preview** (operators). Nothing is refunded yet.

    Choose the campaign, a reason (kept in the audit log), which pledges (`all`, a list of `pledges`, or a
    `filter` on tier, pledge status and creation time) and how much of each (`full`, a `percent` of what
    remains refundable, a `fixed` amount, or only the part `above` an amount). The preview answers how many
    pledges the batch refunds, the total per currency, and every pledge left out with its reason
    (`GET .../exclusions`). Pledges that were never charged (all-or-nothing before the charge) are canceled
    instead of refunded. Above the approval threshold a second operator must approve
    (`requires_second_approval`). Send an `Idempotency-Key`: a retry replays the first answer."""
    pledge_rows, missing = await refund_batch_service.select_pledges(pledges, data, settings)
    batch = await refund_batch_service.create(session, principal, data, pledge_rows, missing, settings)
    response.headers["Location"] = f"/v1/refund-batches/{batch.id}"
    return await refund_batch_service.present(session, batch, settings)


@router.get("", response_model=schemas.RefundBatchPage, responses=problem_responses(401, 403, 422))
async def list_refund_batches(
    campaign_id: uuid.UUID | None = Query(default=None, description="Only this campaign's batches."),
    status_filter: BatchStatus | None = Query(default=None, alias="status", description="Only batches in this state."),
    cursor: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=20, ge=1, le=100),
    principal: Principal = Depends(require_reader),
    session: AsyncSession = Depends(get_session),
) -> schemas.RefundBatchPage:
    """List refund batches, newest first (operators see all; a creator sees the single refunds they asked
    for). Progress figures are on `GET /v1/refund-batches/{batch_id}`."""
    rows, next_cursor = await refund_batch_service.list(
        session, principal, campaign_id=campaign_id, status=status_filter, cursor=cursor, limit=limit
    )
    return schemas.RefundBatchPage(
        items=[schemas.RefundBatch.model_validate(b) for b in rows],
        next_cursor=next_cursor,
    )


@router.get("/{batch_id}", response_model=schemas.RefundBatch, responses=problem_responses(401, 403, 404))
async def get_refund_batch(
    batch_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    session: AsyncSession = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> schemas.RefundBatch:
    """A batch with its progress: counts and amounts by item status, items flagged for follow-up, the rate
    achieved over the last seconds and an estimated time to completion."""
    batch = await refund_batch_service.get(session, principal, batch_id)
    return await refund_batch_service.present(session, batch, settings)


@router.get(
    "/{batch_id}/exclusions", response_model=schemas.ExclusionPage, responses=problem_responses(401, 403, 404, 422)
)
async def list_refund_batch_exclusions(
    batch_id: uuid.UUID,
    cursor: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = Depends(require_reader),
    session: AsyncSession = Depends(get_session),
) -> schemas.ExclusionPage:
    """Every pledge the selection matched but the batch leaves out, with the reason."""
    await refund_batch_service.get(session, principal, batch_id)
    rows, next_cursor = await refund_batch_service.exclusions(session, batch_id, cursor=cursor, limit=limit)
    return schemas.ExclusionPage(items=[schemas.Exclusion.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get(
    "/{batch_id}/audit-log", response_model=list[schemas.AuditEntry], responses=problem_responses(401, 403, 404, 422)
)
async def list_refund_batch_audit_log(
    batch_id: uuid.UUID,
    limit: int = Query(default=100, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=INTEGER_MAX),
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(get_session),
) -> list[schemas.AuditEntry]:
    """Operators: the batch's append-only audit log, oldest first (who created, approved, started, paused,
    resumed, canceled it and downloaded its report, and when)."""
    await refund_batch_service.get(session, principal, batch_id)
    entries = await refund_batch_service.audit_log(session, batch_id, limit=limit, offset=offset)
    return [schemas.AuditEntry.model_validate(e) for e in entries]


@router.post(
    "/{batch_id}/approve", response_model=schemas.RefundBatch, responses=problem_responses(401, 403, 404, 409, 422)
)
async def approve_refund_batch(
    batch_id: uuid.UUID,
    data: schemas.ActionRequest = Body(default_factory=schemas.ActionRequest),
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> schemas.RefundBatch:
    """Approve a previewed batch (operators). When the batch is above the approval threshold
    (`requires_second_approval`), the approver must be another operator than its creator (403
    `second_approver_required`). 409 `invalid_batch_state` if it is not a preview."""
    batch = await refund_batch_service.approve(session, principal, batch_id, data.note)
    return await refund_batch_service.present(session, batch, settings)


@router.post(
    "/{batch_id}/start", response_model=schemas.RefundBatch, responses=problem_responses(401, 403, 404, 409, 422)
)
async def start_refund_batch(
    batch_id: uuid.UUID,
    data: schemas.ActionRequest = Body(default_factory=schemas.ActionRequest),
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> schemas.RefundBatch:
    """Start an approved batch: workers begin sending its refunds under the shared Stripe rate limit.
    409 `batch_not_approved` before approval."""
    batch = await refund_batch_service.start(session, principal, batch_id, data.note)
    return await refund_batch_service.present(session, batch, settings)


@router.post(
    "/{batch_id}/pause", response_model=schemas.RefundBatch, responses=problem_responses(401, 403, 404, 409, 422)
)
async def pause_refund_batch(
    batch_id: uuid.UUID,
    data: schemas.ActionRequest = Body(default_factory=schemas.ActionRequest),
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> schemas.RefundBatch:
    """Pause a running batch: no new refund is sent; the ones in flight finish and are recorded."""
    batch = await refund_batch_service.pause(session, principal, batch_id, data.note)
    return await refund_batch_service.present(session, batch, settings)


@router.post(
    "/{batch_id}/resume", response_model=schemas.RefundBatch, responses=problem_responses(401, 403, 404, 409, 422)
)
async def resume_refund_batch(
    batch_id: uuid.UUID,
    data: schemas.ActionRequest = Body(default_factory=schemas.ActionRequest),
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> schemas.RefundBatch:
    """Resume a paused batch where it stopped."""
    batch = await refund_batch_service.resume(session, principal, batch_id, data.note)
    return await refund_batch_service.present(session, batch, settings)


@router.post(
    "/{batch_id}/cancel", response_model=schemas.RefundBatch, responses=problem_responses(401, 403, 404, 409, 422)
)
async def cancel_refund_batch(
    batch_id: uuid.UUID,
    data: schemas.ActionRequest = Body(default_factory=schemas.ActionRequest),
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> schemas.RefundBatch:
    """Cancel a batch that has not finished: no new refund is sent. Refunds already sent stand and stay in
    the report; items never sent become `canceled`."""
    batch = await refund_batch_service.cancel(session, principal, batch_id, data.note)
    return await refund_batch_service.present(session, batch, settings)
