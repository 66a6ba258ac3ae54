"""``POST /v1/webhooks/stripe/refunds``: Stripe's refund events (no JWT: the Stripe-Signature header)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.refunds.config import Settings
from services.refunds.dependencies import get_settings
from services.refunds.webhooks.service import stripe_event_service
from shared.errors import problem_responses
from shared.unit_of_work import UnitOfWorkRoute, get_session

router = APIRouter(prefix="/v1/webhooks/stripe", tags=["webhooks"], route_class=UnitOfWorkRoute)


class WebhookReceipt(BaseModel):
    received: bool = True
    status: str = Field(description="`accepted`, `duplicate` (already received) or `ignored` (not a refund event).")


@router.post(
    "/refunds",
    response_model=WebhookReceipt,
    responses=problem_responses(400, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "description": "A Stripe event."}}},
        }
    },
)
async def receive_stripe_webhook_refunds(
    request: Request,
    session: AsyncSession = Depends(get_session),
    settings: Settings = Depends(get_settings),
) -> WebhookReceipt:
    """Stripe calls this with refund events (`refund.updated`, `refund.failed`, `charge.refund.updated`).
    Authenticated by the `Stripe-Signature` header over the raw body (400 `invalid_signature` otherwise).
    Each event is stored once, keyed by its id, and moves the matching refund item forward; other event
    types are acknowledged and ignored."""
    secret = settings.stripe_webhook_secret.get_secret_value() if settings.stripe_webhook_secret else None
    event = stripe_event_service.verify(await request.body(), request.headers.get("stripe-signature"), secret)
    receipt = await stripe_event_service.receive(session, event)
    return WebhookReceipt(status=receipt.status)
