"""Pledges service: pledges, accepted-terms snapshots, payments through Stripe, charge runs, webhook inbox."""

from __future__ import annotations

from fastapi import FastAPI

from services.pledges.config import Settings
from services.pledges.models import IdempotencyRecord, InboxEvent
from shared.app import create_service_app
from shared.outbox import inbox_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        name="pledges",
        title="Pledges service",
        description="Pledges with the exact terms each backer accepted, payments, charge runs and re-consent.",
        settings=settings,
        routers=[],
        internal_routers=[inbox_router(InboxEvent, handlers={})],
        idempotency_model=IdempotencyRecord,
    )
