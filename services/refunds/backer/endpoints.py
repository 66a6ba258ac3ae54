"""``/internal/pledges/{pledge_id}/backer-refund``: the pledges service asks for a backer's own refund
(service token only; never routed by the gateway)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Header, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.refunds.backer import schemas
from services.refunds.backer.service import backer_refund_service
from shared.auth import Principal, require_service
from shared.errors import problem_responses
from shared.unit_of_work import UnitOfWorkRoute, get_session

router = APIRouter(route_class=UnitOfWorkRoute)

REPEAT_ANSWERED: dict[int | str, dict[str, Any]] = {
    200: {"model": schemas.BackerRefund, "description": "The refund asked for before."}
}


@router.post(
    "/pledges/{pledge_id}/backer-refund",
    response_model=schemas.BackerRefund,
    status_code=status.HTTP_201_CREATED,
    responses=REPEAT_ANSWERED | problem_responses(401, 403, 422),
)
async def request_backer_refund(
    pledge_id: uuid.UUID,
    data: schemas.BackerRefundCreate,
    response: Response,
    idempotency_key: str = Header(alias="Idempotency-Key", min_length=1, max_length=255),
    principal: Principal = Depends(require_service),
    session: AsyncSession = Depends(get_session),
) -> schemas.BackerRefund:
    """Refund a pledge in full because its backer canceled it (or withdrew after a change of terms): a batch of
    one that starts at once, without approval, under the same rate limit and exactly-once machinery as any
    batch; its outcome is reported to the pledges service like every refund. One per pledge: asking again
    returns the same refund (200) whatever the key or body, and Stripe is called once."""
    refund, created = await backer_refund_service.request(session, principal, pledge_id, data)
    if not created:
        response.status_code = status.HTTP_200_OK
    return refund
