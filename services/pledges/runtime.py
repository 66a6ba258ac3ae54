"""What the pledges service holds for its lifetime: database, campaigns client, Stripe gateway, worker.

Built by a lifespan hook (inside the running event loop: the HTTP pools bind to it) and kept on
``app.state.pledges``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

from fastapi import FastAPI, Request

from services.pledges.clients.campaigns import CampaignsClient
from services.pledges.clients.refunds import RefundsClient
from services.pledges.config import Settings
from services.pledges.payments.stripe_gateway import StripeGateway
from shared.auth import ServiceTokenSource
from shared.db import Database


@dataclass
class Runtime:
    db: Database
    settings: Settings
    campaigns: CampaignsClient
    stripe: StripeGateway
    refunds: RefundsClient


async def get_runtime(request: Request) -> Runtime:
    return request.app.state.pledges  # type: ignore[no-any-return]


@asynccontextmanager
async def pledges_runtime(app: FastAPI) -> AsyncIterator[None]:
    from services.pledges.worker.worker import PledgeWorker

    settings: Settings = app.state.settings
    assert settings.service_token_secret is not None
    tokens = ServiceTokenSource(settings.service_token_secret.get_secret_value(), "pledges")
    campaigns = CampaignsClient(
        settings.campaigns_url,
        tokens,
        timeout_seconds=settings.http_timeout_seconds,
        cache_seconds=settings.campaign_cache_seconds,
        full_seconds=settings.full_campaign_cache_seconds,
    )
    refunds = RefundsClient(settings.refunds_url, tokens, timeout_seconds=settings.http_timeout_seconds)
    stripe_gateway = StripeGateway(settings)
    runtime = Runtime(db=app.state.db, settings=settings, campaigns=campaigns, stripe=stripe_gateway, refunds=refunds)
    app.state.pledges = runtime
    worker = PledgeWorker(runtime)
    app.state.pledge_worker = worker
    task = asyncio.create_task(worker.run(), name="pledges-worker") if settings.worker_enabled else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        await campaigns.aclose()
        await refunds.aclose()
        await stripe_gateway.aclose()
