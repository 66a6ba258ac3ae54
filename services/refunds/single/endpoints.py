"""``/v1/refunds``: refund one pledge - an operator, or the campaign's creator for their own campaign."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.refunds.clients import CampaignsClient, PledgesClient
from services.refunds.config import Settings
from services.refunds.dependencies import get_campaigns, get_pledges, get_settings, require_creator_or_operator
from services.refunds.single import schemas
from services.refunds.single.service import single_refund_service
from shared.auth import Principal
from shared.errors import problem_responses
from shared.idempotency import IDEMPOTENT
from shared.unit_of_work import UnitOfWorkRoute, get_session

router = APIRouter(prefix="/v1/refunds", tags=["refunds"], route_class=UnitOfWorkRoute)


@router.post(
    "",
    response_model=schemas.SingleRefund,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 404, 409, 422, 503),
    openapi_extra=IDEMPOTENT,
)
async def create_single_refund(
    data: schemas.SingleRefundCreate,
    response: Response,
    principal: Principal = Depends(require_creator_or_operator),
    session: AsyncSession = Depends(get_session),
    pledges: PledgesClient = Depends(get_pledges),
    campaigns: CampaignsClient = Depends(get_campaigns),
    settings: Settings = Depends(get_settings),
) -> schemas.SingleRefund:
    """Refund one pledge (operators, or the creator of the pledge's campaign): everything still refundable,
    or `amount`. It runs through the same machinery as a batch (a batch of one): exactly once, rate-limited,
    reported to the backer's pledge history. A pledge never charged is canceled instead. Below the approval
    threshold it starts at once; above it, it waits for an operator's approval (`requires_approval`).
    409 with the reason when there is nothing to refund (`already_refunded`, `disputed`, `never_charged`,
    `refund_in_progress`); 422 `amount_exceeds_refundable`. Send an `Idempotency-Key`."""
    pledge, request = await single_refund_service.prepare(principal, data, pledges, campaigns)
    refund = await single_refund_service.create(session, principal, pledge, request, settings)
    response.headers["Location"] = f"/v1/refunds/{refund.id}"
    return refund


@router.get("/{refund_id}", response_model=schemas.SingleRefund, responses=problem_responses(401, 403, 404))
async def get_single_refund(
    refund_id: uuid.UUID,
    principal: Principal = Depends(require_creator_or_operator),
    session: AsyncSession = Depends(get_session),
) -> schemas.SingleRefund:
    """A single refund's state: `queued`, `pending` (at the card network), `succeeded`, `failed` (with the
    reason; `follow_up_required` when it failed after Stripe accepted it) or `canceled`."""
    return await single_refund_service.get(session, principal, refund_id)
