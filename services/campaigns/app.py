"""Campaigns service: campaigns, reward tiers and their versions, vetting, caps, disclosure policy."""

from __future__ import annotations

from fastapi import FastAPI

from services.campaigns.audit.endpoints import router as audit_router
from services.campaigns.campaigns.endpoints import router as campaigns_router
from services.campaigns.config import Settings
from services.campaigns.models import IdempotencyRecord, InboxEvent, OutboxEvent
from services.campaigns.refund_totals.handlers import PLEDGE_REFUNDED, on_pledge_refunded
from services.campaigns.reservations.endpoints import router as reservations_router
from services.campaigns.scheduler.worker import deadline_scheduler
from services.campaigns.tiers.endpoints import router as tiers_router
from services.campaigns.vetting.endpoints import router as vetting_router
from shared.app import create_service_app
from shared.outbox import inbox_router, outbox_relay_hook

DESCRIPTION = """\
Campaigns, reward tiers with versioned terms, vetting, funding caps and disclosure policy.

* A campaign starts as a `draft`, is submitted, reviewed by operators against a checklist, approved, then
  launched by its creator; every transition is in an audit log and summarised in a public vetting record.
* Reward terms are versioned: each change creates an immutable version with a content hash, and material
  changes ask existing backers to accept or withdraw.
* A campaign has a funding cap (or a recorded decision to have none) that is never exceeded.
* Each campaign's disclosure policy decides how the public sees the amount raised, the backer count and
  tier availability; the creator and operators always see exact figures, and the amount refunded so far.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        name="campaigns",
        title="Campaigns service",
        description=DESCRIPTION,
        settings=settings,
        # The vetting router first: its static `/v1/campaigns/review-queue` must win over `/{campaign_id}`.
        routers=[vetting_router, campaigns_router, tiers_router, audit_router],
        internal_routers=[
            reservations_router,
            inbox_router(InboxEvent, handlers={PLEDGE_REFUNDED: on_pledge_refunded}),
        ],
        idempotency_model=IdempotencyRecord,
        lifespan_hooks=[
            deadline_scheduler,
            outbox_relay_hook(
                source="campaigns",
                model=OutboxEvent,
                subscribers=lambda app: app.state.settings.event_subscribers(),
                enabled=settings.event_relay_enabled,
            ),
        ],
    )
