"""``POST /v1/webhooks/stripe/pledges``: Stripe's events for this service. The gateway forwards it without a
JWT; the ``Stripe-Signature`` header over the raw body is the authentication."""

from __future__ import annotations

import stripe
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.pledges.runtime import Runtime, get_runtime
from services.pledges.webhooks.service import webhook_service
from shared.errors import BadRequest, problem_responses
from shared.unit_of_work import UnitOfWorkRoute, get_session
from shared.webhooks import NotAnEvent, verified_event

router = APIRouter(tags=["webhooks"], route_class=UnitOfWorkRoute)


class WebhookReceipt(BaseModel):
    status: str = Field(description="`accepted`, `duplicate` (already received) or `ignored` (a type not handled).")


class InvalidSignature(BadRequest):
    code = "invalid_signature"


@router.post("/v1/webhooks/stripe/pledges", response_model=WebhookReceipt, responses=problem_responses(400))
async def receive_stripe_webhook_pledges(
    request: Request, runtime: Runtime = Depends(get_runtime), session: AsyncSession = Depends(get_session)
) -> WebhookReceipt:
    """Stripe webhook endpoint (payment_intent.*, setup_intent.*, charge.dispute.*, refund.*).
    Authenticated by the `Stripe-Signature` header; other event types are acknowledged and ignored."""
    payload = await request.body()
    secret = runtime.settings.stripe_webhook_secret
    assert secret is not None
    try:
        event = verified_event(payload, request.headers.get("stripe-signature"), secret.get_secret_value())
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignature("The Stripe-Signature header does not match the payload.") from exc
    except NotAnEvent as exc:
        raise InvalidSignature("The payload is not a Stripe event.") from exc
    return WebhookReceipt(status=await webhook_service.receive(session, event))
