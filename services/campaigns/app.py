"""Campaigns service: campaigns, reward tiers and their versions, vetting, caps, disclosure policy."""

from __future__ import annotations

from fastapi import FastAPI

from services.campaigns.config import Settings
from services.campaigns.models import IdempotencyRecord
from shared.app import create_service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        name="campaigns",
        title="Campaigns service",
        description="Campaigns, reward tiers (versioned terms), vetting, funding caps and disclosure policy.",
        settings=settings,
        routers=[],
        idempotency_model=IdempotencyRecord,
    )
