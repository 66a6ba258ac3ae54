"""Events from the campaigns service, delivered by its outbox relay to ``POST /internal/events`` and handled
in the same transaction as the inbox insert (a redelivery is acknowledged and ignored).

* ``campaign.closed`` records the closure; what it starts is durable work on the pledge rows, done by the
  worker: a succeeded all-or-nothing campaign makes its active pledges due for charging (the charge run); a
  failed or canceled campaign turns its pledges to compensation (cards detached, capacity released, a
  flexible campaign's payments refunded). The worker repeats the marking on every poll, so a pledge that
  became active while the event was being handled is not missed.
* ``tier.terms_changed`` (material change) asks every backer holding an older version to accept or withdraw.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from services.pledges.models import ConsentStatus, Pledge, PledgeStatus
from services.pledges.pledges.repository import PledgeRepository
from shared.db import utcnow
from shared.outbox import EventEnvelope, EventHandler

log = structlog.get_logger("pledges.events")

CAMPAIGN_CLOSED = "campaign.closed"
TIER_TERMS_CHANGED = "tier.terms_changed"

# Pledges that hold (or may still come to hold) the old terms.
CONSENT_STATUSES = (
    PledgeStatus.RESERVING,
    PledgeStatus.AUTHORIZING,
    PledgeStatus.CONFIRMING,
    PledgeStatus.ACTIVE,
    PledgeStatus.COLLECTED,
    PledgeStatus.CHARGING,
    PledgeStatus.PAYMENT_FAILED,
)


async def on_campaign_closed(session: AsyncSession, envelope: EventEnvelope) -> None:
    payload = envelope.payload
    campaign_id = uuid.UUID(str(payload["campaign_id"]))
    closed_at = payload.get("closed_at")
    repository = PledgeRepository(session)
    await repository.record_closure(
        {
            "campaign_id": campaign_id,
            "outcome": str(payload["outcome"]),
            "funding_model": str(payload.get("funding_model") or ""),
            "event_id": envelope.id,
            "closed_at": datetime.fromisoformat(closed_at) if closed_at else None,
            "received_at": utcnow(),
        }
    )
    now = utcnow()
    due = await repository.schedule_charges(now, campaign_id)
    canceled = await repository.cancel_for_closed_campaigns(now, campaign_id)
    log.info(
        "campaign.closed_received", campaign_id=str(campaign_id), outcome=payload["outcome"], due=due, canceled=canceled
    )


def terms_changed_handler(consent_window_seconds: float) -> EventHandler:
    async def on_tier_terms_changed(session: AsyncSession, envelope: EventEnvelope) -> None:
        payload = envelope.payload
        tier_id = uuid.UUID(str(payload["tier_id"]))
        new_version = int(payload["new_version"])
        now = utcnow()
        result = cast(
            "CursorResult[Any]",
            await session.execute(
                update(Pledge)
                .where(
                    Pledge.tier_id == tier_id,
                    Pledge.terms_version < new_version,
                    Pledge.status.in_(CONSENT_STATUSES),
                )
                .values(
                    consent_status=ConsentStatus.REQUESTED,
                    consent_version=new_version,
                    consent_content_hash=str(payload.get("new_content_hash") or "")[:64] or None,
                    consent_reasons=list(payload.get("reasons") or []),
                    consent_deadline_at=now + timedelta(seconds=consent_window_seconds),
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            ),
        )
        log.info("tier.terms_changed_received", tier_id=str(tier_id), version=new_version, pledges=result.rowcount)

    return on_tier_terms_changed
