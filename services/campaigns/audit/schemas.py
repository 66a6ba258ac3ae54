from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.campaigns.models import ActorRole, AuditAction, CampaignStatus


class AuditEntry(BaseModel):
    """One line of a campaign's append-only audit log: who did what, when, from which state to which."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    campaign_id: uuid.UUID
    action: AuditAction
    actor_id: str
    actor_role: ActorRole
    from_status: CampaignStatus | None
    to_status: CampaignStatus | None
    reason: str | None
    details: dict[str, Any]
    created_at: datetime
