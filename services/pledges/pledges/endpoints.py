"""Public pledge routes under ``/v1/pledges`` (a bearer token on every route).

Routes that drive the saga run without a request-wide transaction: the saga opens a short transaction per step
and never holds one (or a pooled connection) while a call is in flight. Plain reads use the unit of work on a
read session; accepting new terms (one write after one call) uses it on a write session.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.pledges.models import PledgeStatus
from services.pledges.pledges import exceptions, schemas
from services.pledges.pledges.service import pledge_service
from services.pledges.runtime import Runtime, get_runtime
from shared.auth import Principal, Role, require_roles
from shared.errors import problem_responses
from shared.unit_of_work import UnitOfWorkRoute, get_session

require_backer = require_roles(Role.BACKER)
require_reader = require_roles(Role.BACKER, Role.CREATOR, Role.OPERATOR)
require_creator_or_operator = require_roles(Role.CREATOR, Role.OPERATOR)

IDEMPOTENCY_KEY_PARAMETER: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": True,
            "description": "A unique key (e.g. a UUID) per intended pledge. Retrying with the same key and body "
            "answers with the same pledge or refusal and never creates or charges twice; the same key with a "
            "different body is a 422.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ]
}

router = APIRouter(prefix="/v1/pledges", tags=["pledges"])
reads = APIRouter(prefix="/v1/pledges", tags=["pledges"], route_class=UnitOfWorkRoute)
# Writes that are one short transaction after their calls: the request's unit of work, committed before the
# response (a session's transaction begins at its first statement, so none is open during a call).
units = APIRouter(prefix="/v1/pledges", tags=["pledges"], route_class=UnitOfWorkRoute)


@router.post(
    "",
    response_model=schemas.Pledge,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 402, 403, 404, 409, 422, 503),
    openapi_extra=IDEMPOTENCY_KEY_PARAMETER,
)
async def create_pledge(
    data: schemas.PledgeCreate,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key", include_in_schema=False),
    principal: Principal = Depends(require_backer),
    runtime: Runtime = Depends(get_runtime),
) -> Response:
    """Pledge to a reward tier, with the version of its terms you were shown.

    Capacity is reserved at the campaign (never above its cap, the tier's quantity or the per-backer limit),
    then the payment is taken: an **all-or-nothing** campaign saves the card and charges nothing until it
    succeeds; a **flexible** campaign charges now. The pledge keeps an immutable snapshot of the accepted terms.

    Refusals: 409 `terms_changed` (with `current_version` and `current_terms`) when the tier changed since you
    saw it, 409 `cap_reached` / `tier_sold_out` / `backer_limit_reached` / `campaign_not_accepting_pledges`,
    402 `payment_declined` with Stripe's `decline_code`, 422 for an amount or region the tier does not allow.
    503 `pledge_pending`: the pledge could not finish now; retry with the same `Idempotency-Key`."""
    if not idempotency_key or len(idempotency_key) > 255:
        raise exceptions.IdempotencyKeyRequired()
    pledge, replayed = await pledge_service.create(runtime, principal.subject, idempotency_key, data)
    headers = {"Location": f"/v1/pledges/{pledge.id}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    # Serialized once, here: the model was built (and validated) by the service already.
    return Response(
        pledge.model_dump_json(), status_code=status.HTTP_201_CREATED, media_type="application/json", headers=headers
    )


@reads.get("", response_model=schemas.PledgePage, responses=problem_responses(400, 401, 403))
async def list_my_pledges(
    campaign_id: uuid.UUID | None = None,
    status: PledgeStatus | None = None,
    cursor: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=50, ge=1, le=200),
    principal: Principal = Depends(require_backer),
    session: AsyncSession = Depends(get_session),
) -> schemas.PledgePage:
    """Your own pledges, oldest first (cursor pagination)."""
    return await pledge_service.list_mine(
        session, principal, campaign_id=campaign_id, status=status, cursor=cursor, limit=limit
    )


@reads.get(
    "/campaigns/{campaign_id}",
    response_model=schemas.PledgePage,
    responses=problem_responses(400, 401, 403, 404, 503),
)
async def list_campaign_pledges(
    campaign_id: uuid.UUID,
    tier_id: uuid.UUID | None = None,
    status: PledgeStatus | None = None,
    cursor: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=50, ge=1, le=200),
    principal: Principal = Depends(require_creator_or_operator),
    runtime: Runtime = Depends(get_runtime),
    session: AsyncSession = Depends(get_session),
) -> schemas.PledgePage:
    """The pledges of a campaign: its creator's own campaign, or any campaign for an operator."""
    return await pledge_service.list_for_campaign(
        runtime, session, principal, campaign_id, tier_id=tier_id, status=status, cursor=cursor, limit=limit
    )


@reads.get(
    "/campaigns/{campaign_id}/reconciliation",
    response_model=schemas.Reconciliation,
    responses=problem_responses(401, 403, 404, 503),
)
async def get_campaign_pledge_reconciliation(
    campaign_id: uuid.UUID,
    principal: Principal = Depends(require_creator_or_operator),
    runtime: Runtime = Depends(get_runtime),
    session: AsyncSession = Depends(get_session),
) -> schemas.Reconciliation:
    """Compare the sum of the campaign's accepted pledges with the committed total the campaigns service holds."""
    return await pledge_service.reconciliation(runtime, session, principal, campaign_id)


@reads.get("/{pledge_id}", response_model=schemas.Pledge, responses=problem_responses(401, 403, 404))
async def get_pledge(
    pledge_id: uuid.UUID,
    principal: Principal = Depends(require_reader),
    runtime: Runtime = Depends(get_runtime),
    session: AsyncSession = Depends(get_session),
) -> schemas.Pledge:
    """A pledge: what was bought, under which terms, what was paid, its payment and refund history. Visible to
    the backer who made it, the campaign's creator and operators; 404 for anyone else."""
    return await pledge_service.get(runtime, session, principal, pledge_id)


CANCEL_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "model": schemas.Pledge,
        "description": "Taken, not finished: a service it needs is unavailable right now. The pledge is "
        "`compensating` and is completed in the background (asking again shows where it stands).",
    }
}


@router.post(
    "/{pledge_id}/cancel",
    response_model=schemas.Pledge,
    responses=CANCEL_ACCEPTED | problem_responses(401, 403, 404, 409, 503),
)
async def cancel_pledge(
    pledge_id: uuid.UUID,
    response: Response,
    principal: Principal = Depends(require_backer),
    runtime: Runtime = Depends(get_runtime),
) -> schemas.Pledge:
    """Cancel your pledge before the campaign's deadline: its capacity is released, a saved card is forgotten
    and a payment already taken (flexible campaigns) is refunded in full. The pledge is `canceled` at once; its
    refund shows in `refunds` as `pending` until it settles (`payment.refunded_amount` then counts it).
    Canceling again returns the canceled pledge and never refunds twice."""
    pledge, finished = await pledge_service.cancel(runtime, principal, pledge_id)
    if not finished:
        response.status_code = status.HTTP_202_ACCEPTED
    return pledge


@router.put(
    "/{pledge_id}/payment-method",
    response_model=schemas.Pledge,
    responses=problem_responses(401, 402, 403, 404, 409, 422, 503),
)
async def update_pledge_payment_method(
    pledge_id: uuid.UUID,
    data: schemas.PaymentMethodUpdate,
    principal: Principal = Depends(require_backer),
    runtime: Runtime = Depends(get_runtime),
) -> schemas.Pledge:
    """Replace the saved card of an all-or-nothing pledge. After a failed charge (`payment_failed`, within the
    grace period) the pledge is charged again with the new card."""
    return await pledge_service.update_payment_method(runtime, principal, pledge_id, data.payment_method)


@units.post(
    "/{pledge_id}/accept-terms",
    response_model=schemas.Pledge,
    responses=problem_responses(401, 403, 404, 409, 503),
)
async def accept_new_terms(
    pledge_id: uuid.UUID,
    data: schemas.TermsAcceptance,
    principal: Principal = Depends(require_backer),
    runtime: Runtime = Depends(get_runtime),
    session: AsyncSession = Depends(get_session),
) -> schemas.Pledge:
    """Accept the new version of your tier's terms after a material change. A new immutable snapshot is kept
    next to the earlier ones."""
    return await pledge_service.accept_terms(runtime, session, principal, pledge_id, data.version)


@router.post(
    "/{pledge_id}/withdraw",
    response_model=schemas.Pledge,
    responses=CANCEL_ACCEPTED | problem_responses(401, 403, 404, 409, 503),
)
async def withdraw_pledge(
    pledge_id: uuid.UUID,
    response: Response,
    principal: Principal = Depends(require_backer),
    runtime: Runtime = Depends(get_runtime),
) -> schemas.Pledge:
    """Withdraw after a material change of terms, within the window: a clean cancel if nothing was charged,
    a full refund otherwise (shown `pending` in `refunds` until it settles, as for a cancel)."""
    pledge, finished = await pledge_service.withdraw(runtime, principal, pledge_id)
    if not finished:
        response.status_code = status.HTTP_202_ACCEPTED
    return pledge
