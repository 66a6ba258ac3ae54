"""Test helpers: live campaigns made through the campaigns service's public API, pledge bodies, and the
Stripe server's inspection routes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx

from shared.auth import ServiceTokenSource
from shared.settings import DEV_SERVICE_SECRET
from shared.testing import auth_headers
from stripe_local.testing import StripeLocalProcess

CHECKLIST = ("identity_verified", "prototype_evidence", "budget_plausible", "risks_disclosed", "fulfilment_plan")


def idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def service_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ServiceTokenSource(DEV_SERVICE_SECRET, 'refunds').token()}"}


@dataclass
class LiveCampaign:
    id: str
    creator_id: str
    operator_id: str
    tiers: list[dict[str, Any]]
    funding_model: str

    @property
    def tier(self) -> dict[str, Any]:
        return self.tiers[0]

    # UUID, not uuid.UUID: in this class body ``uuid`` names the property below.
    @property
    def uuid(self) -> UUID:
        return uuid.UUID(self.id)

    @property
    def tier_uuid(self) -> UUID:
        return uuid.UUID(self.tier["id"])

    @property
    def creator(self) -> dict[str, str]:
        return auth_headers(self.creator_id, "creator")

    @property
    def operator(self) -> dict[str, str]:
        return auth_headers(self.operator_id, "operator")


@dataclass
class Backer:
    id: str = field(default_factory=lambda: f"backer-{uuid.uuid4().hex[:10]}")

    @property
    def headers(self) -> dict[str, str]:
        return auth_headers(self.id, "backer")


def tier_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "The game",
        "description": "One copy.",
        "price_amount": 5_000,
        "items": [{"name": "Board game", "quantity": 1}],
        "estimated_delivery": "2027-06",
        "shipping": [{"region": "US", "shipping_amount": 1_000}, {"region": "FR", "shipping_amount": 2_000}],
    }
    body.update(overrides)
    return body


async def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


async def live_campaign(
    campaigns: httpx.AsyncClient,
    *,
    funding_model: str = "all_or_nothing",
    cap_amount: int | None = 500_000,
    goal_amount: int = 10_000,
    deadline_in: float = 30 * 24 * 3600,
    tiers: list[dict[str, Any]] | None = None,
) -> LiveCampaign:
    """Create, review, approve and launch a campaign through the campaigns service's public API."""
    creator_id = f"creator-{uuid.uuid4().hex[:8]}"
    operator_id = f"operator-{uuid.uuid4().hex[:8]}"
    creator, operator = auth_headers(creator_id, "creator"), auth_headers(operator_id, "operator")
    body: dict[str, Any] = {
        "title": "A very good board game",
        "description": "Cards, dice and a cat.",
        "currency": "USD",
        "goal_amount": goal_amount,
        "funding_model": funding_model,
        "deadline_at": (datetime.now(UTC) + timedelta(seconds=deadline_in)).isoformat(),
        "risks_and_challenges": "Factory delays.",
        "budget": [{"label": "Printing", "cost_amount": 8_000}, {"label": "Shipping", "cost_amount": 2_000}],
    }
    if cap_amount is None:
        body["uncapped"] = True
    else:
        body["cap_amount"] = cap_amount
    campaign = await _ok(await campaigns.post("/v1/campaigns", json=body, headers=creator | idem()), 201)
    base = f"/v1/campaigns/{campaign['id']}"
    created = [
        await _ok(await campaigns.post(f"{base}/tiers", json=tier_body(**t), headers=creator | idem()), 201)
        for t in (tiers or [{}])
    ]
    await _ok(await campaigns.post(f"{base}/submit", headers=creator))
    await _ok(await campaigns.post(f"{base}/start-review", headers=operator))
    for item in CHECKLIST:
        await _ok(
            await campaigns.put(
                f"{base}/review-checklist/{item}", json={"result": "passed", "note": "ok"}, headers=operator
            )
        )
    await _ok(await campaigns.post(f"{base}/approve", headers=operator))
    await _ok(await campaigns.post(f"{base}/launch", headers=creator))
    return LiveCampaign(campaign["id"], creator_id, operator_id, created, funding_model)


def pledge_body(campaign: LiveCampaign, tier: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    tier = tier or campaign.tier
    terms = tier["terms"]
    shipping = terms["shipping"][0] if terms["shipping"] else None
    body: dict[str, Any] = {
        "campaign_id": campaign.id,
        "tier_id": tier["id"],
        "tier_version": terms["version"],
        "amount": terms["price_amount"] + (shipping["shipping_amount"] if shipping else 0),
        "shipping_region": shipping["region"] if shipping else None,
        "payment_method": "pm_card_visa",
    }
    body.update(overrides)
    return body


async def totals(campaigns: httpx.AsyncClient, campaign_id: str) -> dict[str, Any]:
    return await _ok(await campaigns.get(f"/internal/campaigns/{campaign_id}/totals", headers=service_headers()))


async def reservation(campaigns: httpx.AsyncClient, campaign_id: str, pledge_id: str) -> dict[str, Any]:
    return await _ok(
        await campaigns.get(f"/internal/campaigns/{campaign_id}/reservations/{pledge_id}", headers=service_headers())
    )


def payment_intents(stripe: StripeLocalProcess, pledge_id: str) -> list[dict[str, Any]]:
    return stripe.local("GET", "payment_intents", **{"metadata[pledge_id]": pledge_id})["data"]  # type: ignore[no-any-return]


def setup_intents(stripe: StripeLocalProcess, pledge_id: str) -> list[dict[str, Any]]:
    return stripe.local("GET", "setup_intents", **{"metadata[pledge_id]": pledge_id})["data"]  # type: ignore[no-any-return]


def refunds(stripe: StripeLocalProcess, payment_intent: str) -> list[dict[str, Any]]:
    return stripe.local("GET", "refunds", payment_intent=payment_intent)["data"]  # type: ignore[no-any-return]


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
