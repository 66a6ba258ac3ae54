"""Internal routes for the refunds service (service token only), mounted under ``/internal``.

Contract (owned by pledges, tested here):

* ``GET /internal/campaigns/{campaign_id}/pledges`` — a campaign's pledges as ``PledgeForRefund``, ordered by
  (created_at, id), cursor pagination, filters ``tier_id``, ``status``, ``created_from`` (inclusive),
  ``created_to`` (exclusive);
* ``GET /internal/pledges/{pledge_id}``;
* ``POST /internal/pledges/{pledge_id}/refunds`` (``Idempotency-Key`` = the refund item id) — upsert a refund
  outcome, unique on ``refund_id``; ``refunded_amount`` is the sum of succeeded refunds; 409
  ``refund_exceeds_charged`` if pending + succeeded refunds would exceed what was charged;
* ``POST /internal/refund-outcomes`` — the same upsert for up to 500 outcomes of any pledges in one transaction;
  the answer says per record ``recorded`` or ``refused`` with the single route's ``code``;
* ``POST /internal/pledges/{pledge_id}/cancel`` (``Idempotency-Key``) — cancel a pledge never charged; 409
  ``already_charged`` if money was taken.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Header, Query
from pydantic import AwareDatetime
from sqlalchemy.ext.asyncio import AsyncSession

from services.pledges.internal import schemas
from services.pledges.internal.service import internal_pledge_service
from services.pledges.models import PledgeStatus
from services.pledges.runtime import Runtime, get_runtime
from shared.auth import require_service
from shared.errors import problem_responses
from shared.unit_of_work import UnitOfWorkRoute, get_session

IdempotencyKey = Header(alias="Idempotency-Key", min_length=1, max_length=255)

reads = APIRouter(route_class=UnitOfWorkRoute, dependencies=[Depends(require_service)])
writes = APIRouter(dependencies=[Depends(require_service)])


@reads.get(
    "/campaigns/{campaign_id}/pledges",
    response_model=schemas.PledgeForRefundPage,
    responses=problem_responses(400, 401, 403),
)
async def list_campaign_pledges_for_refund(
    campaign_id: uuid.UUID,
    limit: int = Query(default=100, ge=1, le=500),
    cursor: str | None = Query(default=None, max_length=200),
    tier_id: uuid.UUID | None = None,
    status: PledgeStatus | None = None,
    created_from: AwareDatetime | None = None,
    created_to: AwareDatetime | None = None,
    session: AsyncSession = Depends(get_session),
) -> schemas.PledgeForRefundPage:
    """A campaign's pledges for refund planning, oldest first. `next_cursor` is null on the last page."""
    return await internal_pledge_service.list_for_campaign(
        session,
        campaign_id,
        limit=limit,
        cursor=cursor,
        tier_id=tier_id,
        status=status,
        created_from=created_from,
        created_to=created_to,
    )


@reads.get(
    "/pledges/{pledge_id}",
    response_model=schemas.PledgeForRefund,
    responses=problem_responses(401, 403, 404),
)
async def get_pledge_for_refund(
    pledge_id: uuid.UUID, session: AsyncSession = Depends(get_session)
) -> schemas.PledgeForRefund:
    """One pledge as the refunds service sees it."""
    return await internal_pledge_service.get(session, pledge_id)


@reads.post(
    "/pledges/{pledge_id}/refunds",
    response_model=schemas.PledgeForRefund,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def record_pledge_refund(
    pledge_id: uuid.UUID,
    data: schemas.RefundOutcome,
    idempotency_key: str = IdempotencyKey,
    session: AsyncSession = Depends(get_session),
) -> schemas.PledgeForRefund:
    """Record a refund's outcome in the pledge's history (insert or update by `refund_id`), recompute
    `refunded_amount` from succeeded refunds and set the status `refunded` / `partially_refunded` (back to
    `collected` if a refund later fails). Never records more than was charged (409 `refund_exceeds_charged`).
    Safe to repeat: a replay, or a status older than the one recorded (`pending` after `succeeded`), changes
    nothing."""
    return await internal_pledge_service.record_refund(session, pledge_id, data)


@reads.post(
    "/refund-outcomes",
    response_model=schemas.RefundOutcomeResults,
    responses=problem_responses(401, 403, 422),
)
async def record_refund_outcomes(
    data: schemas.RefundOutcomeBatch, session: AsyncSession = Depends(get_session)
) -> schemas.RefundOutcomeResults:
    """Record many refund outcomes at once, in one transaction: each record is applied in order exactly as
    `POST /internal/pledges/{pledge_id}/refunds` would apply it (upsert by `refund_id`, totals and status
    recomputed once per pledge, `pledge.refunded` published once per pledge whose succeeded refunds grew in the
    call, with what it grew by). Safe to repeat: a replayed
    record, or a status older than the one recorded (`pending` after `succeeded`), changes nothing. A record
    the single route would refuse is answered `refused` with that route's `code` and changes nothing; the
    others are recorded. A body that does not validate is a 422 and nothing is recorded."""
    return await internal_pledge_service.record_refund_outcomes(session, data.records)


@writes.post(
    "/pledges/{pledge_id}/cancel",
    response_model=schemas.PledgeForRefund,
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def cancel_pledge_for_refund(
    pledge_id: uuid.UUID,
    data: schemas.InternalCancel,
    idempotency_key: str = IdempotencyKey,
    runtime: Runtime = Depends(get_runtime),
) -> schemas.PledgeForRefund:
    """Cancel a pledge that was never charged: the reservation is released at the campaign and the saved card
    detached; status `canceled`. Repeating it returns the canceled pledge. 409 `already_charged` when money was
    taken (refund it instead), 409 `pledge_in_progress` while the pledge is mid-step."""
    return await internal_pledge_service.cancel(runtime, pledge_id, data.reason)
