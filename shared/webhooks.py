"""Stripe webhook deliveries, verified on the raw body: the one check both receiving services share."""

from __future__ import annotations

from typing import Any

import orjson
import stripe

# Stripe's own default: a delivery signed more than 5 minutes ago is refused (a replayed old delivery).
TOLERANCE_SECONDS = stripe.Webhook.DEFAULT_TOLERANCE


class NotAnEvent(ValueError):
    """The body is not a Stripe event: not UTF-8 text, not JSON, or without an id and a type."""


def verified_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """The event a delivery carries, once its ``Stripe-Signature`` matches ``payload`` and its timestamp is
    recent. Raises ``stripe.SignatureVerificationError`` or :class:`NotAnEvent`.

    The SDK's ``WebhookSignature.verify_header`` does the check (HMAC-SHA256 of ``timestamp.body``, every
    ``v1`` signature compared in constant time, the tolerance); the body is then parsed once, as a plain dict.
    Not ``stripe.Webhook.construct_event``: it parses the body again into a tree of ``StripeObject``s that
    the services only turned back into a dict."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, TOLERANCE_SECONDS)
    except UnicodeDecodeError as exc:  # the SDK signs and checks the body's text
        raise NotAnEvent("not UTF-8") from exc
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise NotAnEvent("not JSON") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise NotAnEvent("no event id and type")
    return event
