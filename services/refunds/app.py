"""Refunds service: operator refund batches — previewed, approved, rate-limited, resumable, reported."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.refunds.backer.endpoints import router as backer_router
from services.refunds.batches.endpoints import router as batches_router
from services.refunds.clients import CampaignsClient, PledgesClient
from services.refunds.config import Settings
from services.refunds.execution.worker import refund_workers
from services.refunds.models import IdempotencyRecord, InboxEvent
from services.refunds.reports.endpoints import router as reports_router
from services.refunds.single.endpoints import router as single_router
from services.refunds.webhooks.endpoints import router as webhooks_router
from shared.app import create_service_app
from shared.auth import ServiceTokenSource
from shared.outbox import inbox_router

DESCRIPTION = """\
Refunds for operators: refund every backer of a campaign (or a selection) safely, weeks or months later.

* A batch is created as a **preview** (what would be refunded, per currency, and every pledge left out with
  the reason), approved (by a second operator above a threshold), then started, paused, resumed or canceled.
* Workers send each refund exactly once under a fleet-wide Stripe rate limit; a crash resumes, never repeats.
* Progress (also as a Server-Sent Events stream) and a per-item report (CSV or JSON) show what happened to
  each backer; refunds that fail after the fact are flagged for follow-up.
"""


@asynccontextmanager
async def service_clients(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    assert settings.service_token_secret is not None
    tokens = ServiceTokenSource(settings.service_token_secret.get_secret_value(), "refunds")
    app.state.pledges = PledgesClient(settings.pledges_url, tokens, settings.http_timeout_seconds)
    app.state.campaigns = CampaignsClient(settings.campaigns_url, tokens, settings.http_timeout_seconds)
    try:
        yield
    finally:
        await app.state.pledges.aclose()
        await app.state.campaigns.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        name="refunds",
        title="Refunds service",
        description=DESCRIPTION,
        settings=settings,
        routers=[batches_router, reports_router, single_router, webhooks_router],
        internal_routers=[backer_router, inbox_router(InboxEvent, handlers={})],
        idempotency_model=IdempotencyRecord,
        lifespan_hooks=[service_clients, refund_workers],
    )
