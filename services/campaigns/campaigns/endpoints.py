"""Public campaign routes (``/v1/campaigns``) and the internal campaign read for other services."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.audit.exact_reads import record_exact_reads
from services.campaigns.campaigns import schemas
from services.campaigns.campaigns.service import campaign_service
from services.campaigns.dependencies import get_database, get_viewer, request_session, require_creator
from services.campaigns.etag import IfMatch, etag
from services.campaigns.models import CampaignStatus
from shared.auth import Principal
from shared.db import Database
from shared.errors import problem_responses
from shared.idempotency import IDEMPOTENT
from shared.unit_of_work import UnitOfWorkRoute

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"], route_class=UnitOfWorkRoute)


@router.post(
    "",
    response_model=schemas.Campaign,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 409, 422),
    openapi_extra=IDEMPOTENT,
)
async def create_campaign(
    data: schemas.CampaignCreate,
    response: Response,
    principal: Principal = Depends(require_creator),
    session: AsyncSession = Depends(request_session),
) -> schemas.Campaign:
    """Create a campaign in `draft` (creator role).

    Only you and the platform's operators can see it until it launches. Add reward tiers, a budget, the
    risks and challenges, a deadline and a cap decision, then submit it for review. The response carries
    an `ETag`: send it back in `If-Match` when you edit."""
    viewer = Viewer(principal)
    campaign = await campaign_service.create(session, viewer, data)
    response.headers["ETag"] = etag(campaign.revision)
    response.headers["Location"] = f"/v1/campaigns/{campaign.id}"
    return campaign_service.present(campaign, viewer, refunded={})  # a new campaign has no refunds


@router.get("", response_model=schemas.CampaignPage, responses=problem_responses(401, 422))
async def list_campaigns(
    status_filter: list[CampaignStatus] | None = Query(
        default=None, alias="status", description="Only campaigns in these states (repeat the parameter)."
    ),
    creator_id: str | None = Query(default=None, max_length=200, description="Only this creator's campaigns."),
    sort: schemas.CampaignSort = Query(default=schemas.CampaignSort.NEWEST),
    cursor: str | None = Query(default=None, max_length=500),
    limit: int = Query(default=20, ge=1, le=100),
    viewer: Viewer = Depends(get_viewer),
    session: AsyncSession = Depends(request_session),
    db: Database = Depends(get_database),
) -> schemas.CampaignPage:
    """List campaigns, newest first or by nearest deadline.

    Anyone may call it: anonymous callers and backers see launched campaigns only, a creator also sees
    their own drafts, operators see everything. Figures follow each campaign's disclosure policy, and no
    order or filter reveals what the policy hides."""
    rows, next_cursor = await campaign_service.list(
        session, viewer, statuses=status_filter, creator_id=creator_id, sort=sort, cursor=cursor, limit=limit
    )
    refunded = await campaign_service.refunded_totals(session, viewer, rows)
    page = schemas.CampaignPage(
        items=[campaign_service.present(c, viewer, refunded) for c in rows], next_cursor=next_cursor
    )
    await record_exact_reads(db, viewer, rows, route="list_campaigns")
    return page


@router.get("/{campaign_id}", response_model=schemas.Campaign, responses=problem_responses(401, 404))
async def get_campaign(
    campaign_id: uuid.UUID,
    response: Response,
    viewer: Viewer = Depends(get_viewer),
    session: AsyncSession = Depends(request_session),
    db: Database = Depends(get_database),
) -> schemas.Campaign:
    """Read a campaign. Anonymous callers may read launched campaigns; figures follow its disclosure policy
    (the creator and operators see exact figures). The `ETag` header is what `If-Match` expects."""
    campaign = await campaign_service.get(session, campaign_id, viewer)
    response.headers["ETag"] = etag(campaign.revision)
    refunded = await campaign_service.refunded_totals(session, viewer, [campaign])
    body = campaign_service.present(campaign, viewer, refunded)
    await record_exact_reads(db, viewer, [campaign], route="get_campaign")
    return body


@router.patch(
    "/{campaign_id}",
    response_model=schemas.Campaign,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_campaign(
    campaign_id: uuid.UUID,
    data: schemas.CampaignUpdate,
    if_match: IfMatch,
    response: Response,
    principal: Principal = Depends(require_creator),
    session: AsyncSession = Depends(request_session),
) -> schemas.Campaign:
    """Edit your campaign. Send only the fields that change, with `If-Match: "<revision>"`.

    A material change (goal, cap, funding model, deadline, budget, risks) to an `approved` campaign sends
    it back to review. A live campaign may only change its wording and disclosure policy (409
    `field_locked` otherwise); tier terms change through the tier routes, which keep every version."""
    viewer = Viewer(principal)
    campaign = await campaign_service.update(session, campaign_id, viewer, data, if_match)
    response.headers["ETag"] = etag(campaign.revision)
    refunded = await campaign_service.refunded_totals(session, viewer, [campaign])
    return campaign_service.present(campaign, viewer, refunded)
