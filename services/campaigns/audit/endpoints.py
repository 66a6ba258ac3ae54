from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Query
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.audit import schemas
from services.campaigns.audit.service import audit_service
from services.campaigns.campaigns.service import campaign_service
from services.campaigns.dependencies import request_session, require_operator
from shared.auth import Principal
from shared.db import INTEGER_MAX
from shared.errors import problem_responses
from shared.unit_of_work import UnitOfWorkRoute

router = APIRouter(prefix="/v1/campaigns", tags=["audit"], route_class=UnitOfWorkRoute)


@router.get(
    "/{campaign_id}/audit-log", response_model=list[schemas.AuditEntry], responses=problem_responses(401, 403, 404)
)
async def list_campaign_audit_log(
    campaign_id: uuid.UUID,
    limit: int = Query(default=100, ge=1, le=500),
    offset: int = Query(default=0, ge=0, le=INTEGER_MAX),
    principal: Principal = Depends(require_operator),
    session: AsyncSession = Depends(request_session),
) -> list[schemas.AuditEntry]:
    """Operators: the campaign's append-only audit log, oldest first — every state transition (who, when,
    from, to, reason), checklist result, terms change and operator read of exact figures."""
    campaign = await campaign_service.get(session, campaign_id, Viewer(principal))
    entries = await audit_service.list_for_campaign(session, campaign.id, limit=limit, offset=offset)
    return [schemas.AuditEntry.model_validate(entry) for entry in entries]
