"""Internal API for the pledges service (service token only), mounted under ``/internal``.

Contract: the pledge id is the idempotency key of a reservation. ``reserve`` → (take payment) → ``confirm``;
on a decline or failure ``release``. A reservation never confirmed expires after the configured TTL and is
released by the sweeper. When the payment is secured before asking (an all-or-nothing pledge saves the card
first), ``reserve`` with ``confirmed: true`` holds and commits in one call; ``release`` undoes it. Refusals are 409 problems with stable codes and no figures.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.config import Settings
from services.campaigns.dependencies import get_settings, request_session
from services.campaigns.models import ReservationStatus
from services.campaigns.reservations import schemas
from services.campaigns.reservations.service import reservation_service
from services.campaigns.reservations.transactions import one_statement_per_transaction
from shared.auth import require_service
from shared.errors import problem_responses
from shared.unit_of_work import UnitOfWorkRoute


async def get_capacity_session(session: AsyncSession = Depends(request_session)) -> AsyncSession:
    """The request's session for a capacity change: each statement its own transaction on PostgreSQL."""
    await one_statement_per_transaction(session)
    return session


def reservation_response(reservation: object, status_code: int = status.HTTP_200_OK) -> Response:
    """Serialized once by pydantic (the declared `response_model` still documents it): these routes are
    on every pledge's path."""
    body = schemas.Reservation.model_validate(reservation).model_dump_json()
    return Response(body, status_code=status_code, media_type="application/json")


router = APIRouter(prefix="/campaigns", route_class=UnitOfWorkRoute, dependencies=[Depends(require_service)])

REPEAT_ANSWERED: dict[int | str, dict[str, Any]] = {
    200: {"description": "A repeat of an earlier call: the existing reservation."}
}


@router.get("/{campaign_id}", response_model=schemas.CampaignSnapshot, responses=problem_responses(401, 403, 404))
async def get_campaign_snapshot(
    campaign_id: uuid.UUID, session: AsyncSession = Depends(request_session)
) -> schemas.CampaignSnapshot:
    """The campaign's state, capabilities and exact running totals, for other services."""
    return await reservation_service.snapshot(session, campaign_id)


@router.get("/{campaign_id}/totals", response_model=schemas.CampaignTotals, responses=problem_responses(401, 403, 404))
async def get_campaign_totals(
    campaign_id: uuid.UUID, session: AsyncSession = Depends(request_session)
) -> schemas.CampaignTotals:
    """Reconciliation: committed and reserved totals next to the sums recomputed from the reservations.
    The pledges service compares `confirmed_sum_amount` with the sum of its active pledges."""
    return await reservation_service.totals(session, campaign_id)


@router.post(
    "/{campaign_id}/reservations",
    response_model=schemas.Reservation,
    status_code=status.HTTP_201_CREATED,
    responses=REPEAT_ANSWERED | problem_responses(401, 403, 404, 409, 422),
)
async def reserve_capacity(
    campaign_id: uuid.UUID,
    data: schemas.ReservationCreate,
    session: AsyncSession = Depends(get_capacity_session),
    settings: Settings = Depends(get_settings),
) -> Response:
    """Hold capacity for a pledge: checks atomically that the campaign is live and before its deadline,
    that the terms version is current (409 `terms_changed` with `current_version`), the tier's quantity
    (409 `tier_sold_out`), the per-backer limit (409 `backer_limit_reached`) and the cap, counting pending
    reservations (409 `cap_reached`). 201 when created; 200 with the existing reservation when the same
    pledge id is sent again with the same fields (409 `pledge_id_reused` if they differ). With `confirmed`
    the reservation is committed at once (a pending one already made for the pledge is confirmed)."""
    reservation, created = await reservation_service.reserve(session, campaign_id, data, settings)
    return reservation_response(reservation, status.HTTP_201_CREATED if created else status.HTTP_200_OK)


@router.get(
    "/{campaign_id}/reservations",
    response_model=schemas.ReservationPage,
    responses=problem_responses(401, 403, 404, 422),
)
async def list_reservations(
    campaign_id: uuid.UUID,
    status_filter: list[ReservationStatus] | None = Query(default=None, alias="status"),
    cursor: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=100, ge=1, le=500),
    session: AsyncSession = Depends(request_session),
) -> schemas.ReservationPage:
    """The campaign's reservations, oldest first, optionally only in some states: for reconciling each
    pledge with the reservation that holds its capacity."""
    rows, next_cursor = await reservation_service.list(
        session, campaign_id, statuses=status_filter, cursor=cursor, limit=limit
    )
    return schemas.ReservationPage(
        items=[schemas.Reservation.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@router.get(
    "/{campaign_id}/reservations/{pledge_id}",
    response_model=schemas.Reservation,
    responses=problem_responses(401, 403, 404),
)
async def get_reservation(
    campaign_id: uuid.UUID, pledge_id: uuid.UUID, session: AsyncSession = Depends(request_session)
) -> schemas.Reservation:
    """The reservation held for a pledge, in whatever state it is."""
    return schemas.Reservation.model_validate(await reservation_service.get(session, campaign_id, pledge_id))


@router.post(
    "/{campaign_id}/reservations/{pledge_id}/confirm",
    response_model=schemas.Reservation,
    responses=problem_responses(401, 403, 404, 409),
)
async def confirm_reservation(
    campaign_id: uuid.UUID, pledge_id: uuid.UUID, session: AsyncSession = Depends(get_capacity_session)
) -> Response:
    """Confirm a pending reservation once payment succeeded (or the card was saved): its amount becomes
    committed. Idempotent. 409 `reservation_expired` / `reservation_released` if it is no longer pending,
    409 `campaign_not_accepting_pledges` if the campaign was suspended or closed meanwhile."""
    return reservation_response(await reservation_service.confirm(session, campaign_id, pledge_id))


@router.post(
    "/{campaign_id}/reservations/{pledge_id}/release",
    response_model=schemas.Reservation,
    responses=problem_responses(401, 403, 404, 422),
)
async def release_reservation(
    campaign_id: uuid.UUID,
    pledge_id: uuid.UUID,
    data: schemas.ReservationRelease | None = None,
    session: AsyncSession = Depends(get_capacity_session),
) -> Response:
    """Give a pledge's capacity back (payment declined, pledge canceled or dropped). Works on pending and
    confirmed reservations, also after the campaign closed; releasing again is harmless. 404 when no
    reservation exists for the pledge (nothing to release)."""
    reason = data.reason if data else "released"
    return reservation_response(await reservation_service.release(session, campaign_id, pledge_id, reason))
