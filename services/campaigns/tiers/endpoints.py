"""Reward tiers and their versioned terms, under ``/v1/campaigns/{campaign_id}/tiers``."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Path, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.audit.exact_reads import record_exact_reads
from services.campaigns.dependencies import get_database, get_viewer, request_session, require_creator
from services.campaigns.etag import IfMatch, etag
from services.campaigns.tiers import schemas
from services.campaigns.tiers.service import tier_service
from shared.auth import Principal
from shared.db import Database
from shared.errors import problem_responses
from shared.idempotency import IDEMPOTENT
from shared.unit_of_work import UnitOfWorkRoute

router = APIRouter(prefix="/v1/campaigns/{campaign_id}/tiers", tags=["tiers"], route_class=UnitOfWorkRoute)


@router.post(
    "",
    response_model=schemas.Tier,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(400, 401, 403, 404, 409, 422),
    openapi_extra=IDEMPOTENT,
)
async def create_tier(
    campaign_id: uuid.UUID,
    data: schemas.TierCreate,
    response: Response,
    principal: Principal = Depends(require_creator),
    session: AsyncSession = Depends(request_session),
) -> schemas.Tier:
    """Add a reward tier to your campaign. Its terms become version 1.

    Allowed while the campaign is a draft, has changes requested, is approved (it then goes back to
    review) or is live (existing backers are unaffected)."""
    viewer = Viewer(principal)
    campaign, tier, version = await tier_service.create(session, campaign_id, viewer, data)
    response.headers["ETag"] = etag(tier.revision)
    response.headers["Location"] = f"/v1/campaigns/{campaign_id}/tiers/{tier.id}"
    return tier_service.present(campaign, tier, version, viewer)


@router.get("", response_model=list[schemas.Tier], responses=problem_responses(401, 404))
async def list_tiers(
    campaign_id: uuid.UUID,
    viewer: Viewer = Depends(get_viewer),
    session: AsyncSession = Depends(request_session),
    db: Database = Depends(get_database),
) -> list[schemas.Tier]:
    """The campaign's reward tiers with their current terms and availability (exact counts or coarse
    `available` / `limited` / `sold_out`, as the campaign's disclosure policy says)."""
    campaign, rows = await tier_service.list(session, campaign_id, viewer)
    body = [tier_service.present(campaign, tier, version, viewer) for tier, version in rows]
    await record_exact_reads(db, viewer, [campaign], route="list_tiers")
    return body


@router.get("/{tier_id}", response_model=schemas.Tier, responses=problem_responses(401, 404))
async def get_tier(
    campaign_id: uuid.UUID,
    tier_id: uuid.UUID,
    response: Response,
    viewer: Viewer = Depends(get_viewer),
    session: AsyncSession = Depends(request_session),
    db: Database = Depends(get_database),
) -> schemas.Tier:
    """One reward tier with its current terms (version number and content hash included)."""
    campaign, tier, version = await tier_service.get(session, campaign_id, tier_id, viewer)
    response.headers["ETag"] = etag(tier.revision)
    body = tier_service.present(campaign, tier, version, viewer)
    await record_exact_reads(db, viewer, [campaign], route="get_tier")
    return body


@router.patch(
    "/{tier_id}",
    response_model=schemas.Tier,
    responses=problem_responses(401, 403, 404, 409, 412, 422),
)
async def update_tier(
    campaign_id: uuid.UUID,
    tier_id: uuid.UUID,
    data: schemas.TierUpdate,
    if_match: IfMatch,
    response: Response,
    principal: Principal = Depends(require_creator),
    session: AsyncSession = Depends(request_session),
) -> schemas.Tier:
    """Edit a tier, with `If-Match: "<revision>"` (412 `revision_mismatch` if someone else edited first).

    A change of terms creates a new immutable version. It is **material** when the price goes up, an item
    is removed or changed, the delivery month moves later or shipping changes; on a live campaign a
    material change asks every backer of the old version to accept the new terms or withdraw, and on an
    approved campaign it sends the campaign back to review. Wording fixes are not material."""
    viewer = Viewer(principal)
    campaign, tier, version = await tier_service.update(session, campaign_id, tier_id, viewer, data, if_match)
    response.headers["ETag"] = etag(tier.revision)
    return tier_service.present(campaign, tier, version, viewer)


@router.delete("/{tier_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 404, 409))
async def delete_tier(
    campaign_id: uuid.UUID,
    tier_id: uuid.UUID,
    principal: Principal = Depends(require_creator),
    session: AsyncSession = Depends(request_session),
) -> Response:
    """Delete a tier of a campaign that has not launched (an approved campaign goes back to review)."""
    await tier_service.delete(session, campaign_id, tier_id, Viewer(principal))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{tier_id}/versions", response_model=list[schemas.TierVersion], responses=problem_responses(401, 404))
async def list_tier_versions(
    campaign_id: uuid.UUID,
    tier_id: uuid.UUID,
    viewer: Viewer = Depends(get_viewer),
    session: AsyncSession = Depends(request_session),
) -> list[schemas.TierVersion]:
    """Every version of the tier's terms, oldest first, each with its content hash and whether it changed
    the previous one materially (and why)."""
    versions = await tier_service.versions(session, campaign_id, tier_id, viewer)
    return [schemas.TierVersion.model_validate(v) for v in versions]


@router.get("/{tier_id}/versions/{version}", response_model=schemas.TierVersion, responses=problem_responses(401, 404))
async def get_tier_version(
    campaign_id: uuid.UUID,
    tier_id: uuid.UUID,
    version: int = Path(ge=1),
    viewer: Viewer = Depends(get_viewer),
    session: AsyncSession = Depends(request_session),
) -> schemas.TierVersion:
    """One version of the tier's terms, exactly as backers saw it. Versions are immutable."""
    return schemas.TierVersion.model_validate(
        await tier_service.version(session, campaign_id, tier_id, version, viewer)
    )
