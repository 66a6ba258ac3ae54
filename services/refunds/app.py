"""Refunds service: operator refund batches — previewed, approved, rate-limited, resumable, reported."""

from __future__ import annotations

from fastapi import FastAPI

from services.refunds.config import Settings
from services.refunds.models import IdempotencyRecord, InboxEvent
from shared.app import create_service_app
from shared.outbox import inbox_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        name="refunds",
        title="Refunds service",
        description="Refund batches for operators: preview, approval, execution exactly once, progress, reports.",
        settings=settings,
        routers=[],
        internal_routers=[inbox_router(InboxEvent, handlers={})],
        idempotency_model=IdempotencyRecord,
    )
