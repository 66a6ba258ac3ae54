"""Pledges service: pledges, accepted-terms snapshots, payments through Stripe, charge runs, webhook inbox."""

from __future__ import annotations

from fastapi import FastAPI

from services.pledges.config import Settings
from services.pledges.events.handlers import (
    CAMPAIGN_CLOSED,
    TIER_TERMS_CHANGED,
    on_campaign_closed,
    terms_changed_handler,
)
from services.pledges.internal.endpoints import reads as internal_reads
from services.pledges.internal.endpoints import writes as internal_writes
from services.pledges.models import IdempotencyRecord, InboxEvent, OutboxEvent
from services.pledges.pledges.endpoints import reads as pledge_reads
from services.pledges.pledges.endpoints import router as pledge_writes
from services.pledges.pledges.endpoints import units as pledge_units
from services.pledges.runtime import pledges_runtime
from services.pledges.webhooks.endpoints import router as webhooks_router
from shared.app import create_service_app
from shared.outbox import inbox_router, outbox_relay_hook

DESCRIPTION = """\
Pledges with the exact terms each backer accepted, their payments through Stripe, charge runs and re-consent.

* A pledge reserves capacity at the campaign (never above its cap), then takes payment: all-or-nothing
  campaigns save the card and charge it only if the campaign succeeds; flexible campaigns charge at once.
* Every pledge keeps an immutable snapshot of the terms accepted; a material change of a tier asks its backers
  to accept the new terms or withdraw.
* Every step is idempotent and persisted: retries with the same `Idempotency-Key` never pay twice.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        name="pledges",
        title="Pledges service",
        description=DESCRIPTION,
        settings=settings,
        routers=[pledge_writes, pledge_reads, pledge_units, webhooks_router],
        internal_routers=[
            internal_reads,
            internal_writes,
            inbox_router(
                InboxEvent,
                handlers={
                    CAMPAIGN_CLOSED: on_campaign_closed,
                    TIER_TERMS_CHANGED: terms_changed_handler(settings.consent_window_seconds),
                },
            ),
        ],
        idempotency_model=IdempotencyRecord,
        lifespan_hooks=[
            pledges_runtime,
            outbox_relay_hook(
                source="pledges",
                model=OutboxEvent,
                subscribers=lambda app: app.state.settings.event_subscribers(),
                enabled=settings.event_relay_enabled,
            ),
        ],
    )
