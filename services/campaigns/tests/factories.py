"""Test helpers that drive the service through its HTTP API only (no back doors into the database)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.auth import ServiceTokenSource
from shared.settings import DEV_SERVICE_SECRET
from shared.testing import auth_headers

CHECKLIST = ("identity_verified", "prototype_evidence", "budget_plausible", "risks_disclosed", "fulfilment_plan")


@dataclass
class Actors:
    creator_id: str = field(default_factory=lambda: f"creator-{uuid.uuid4().hex[:8]}")
    operator_id: str = field(default_factory=lambda: f"operator-{uuid.uuid4().hex[:8]}")

    @property
    def creator(self) -> dict[str, str]:
        return auth_headers(self.creator_id, "creator")

    @property
    def operator(self) -> dict[str, str]:
        return auth_headers(self.operator_id, "operator")

    @property
    def other_creator(self) -> dict[str, str]:
        return auth_headers("someone-else", "creator")

    @property
    def backer(self) -> dict[str, str]:
        return auth_headers("backer-1", "backer")

    @property
    def service(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ServiceTokenSource(DEV_SERVICE_SECRET, 'pledges').token()}"}


def in_future(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def campaign_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "A very good board game",
        "description": "Cards, dice and a cat.",
        "currency": "USD",
        "goal_amount": 100_000,
        "cap_amount": 500_000,
        "funding_model": "all_or_nothing",
        "deadline_at": in_future(30 * 24 * 3600),
        "risks_and_challenges": "Factory delays.",
        "budget": [{"label": "Printing", "cost_amount": 80_000}, {"label": "Shipping", "cost_amount": 20_000}],
    }
    body.update(overrides)
    return body


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


def idem() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


async def create_campaign(client: httpx.AsyncClient, actors: Actors, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/campaigns", json=campaign_body(**overrides), headers=actors.creator | idem())
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def create_tier(client: httpx.AsyncClient, actors: Actors, campaign_id: str, **overrides: Any) -> dict[str, Any]:
    response = await client.post(
        f"/v1/campaigns/{campaign_id}/tiers", json=tier_body(**overrides), headers=actors.creator | idem()
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def post_ok(client: httpx.AsyncClient, url: str, headers: dict[str, str], json: Any = None) -> dict[str, Any]:
    response = await client.post(url, json=json, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


async def approve(client: httpx.AsyncClient, actors: Actors, campaign_id: str) -> None:
    """submitted -> in_review -> every checklist item passed -> approved."""
    base = f"/v1/campaigns/{campaign_id}"
    await post_ok(client, f"{base}/start-review", actors.operator)
    for item in CHECKLIST:
        response = await client.put(
            f"{base}/review-checklist/{item}",
            json={"result": "passed", "note": f"private note on {item}"},
            headers=actors.operator,
        )
        assert response.status_code == 200, response.text
    await post_ok(client, f"{base}/approve", actors.operator)


async def live_campaign(
    client: httpx.AsyncClient,
    actors: Actors,
    *,
    tiers: list[dict[str, Any]] | None = None,
    **overrides: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A launched campaign with its tiers, through the real lifecycle."""
    campaign = await create_campaign(client, actors, **overrides)
    created = [await create_tier(client, actors, campaign["id"], **t) for t in (tiers or [{}])]
    base = f"/v1/campaigns/{campaign['id']}"
    await post_ok(client, f"{base}/submit", actors.creator)
    await approve(client, actors, campaign["id"])
    await post_ok(client, f"{base}/launch", actors.creator)
    return campaign, created


def reservation_body(tier: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    terms = tier["terms"]
    shipping = terms["shipping"][0] if terms["shipping"] else None
    body: dict[str, Any] = {
        "pledge_id": str(uuid.uuid4()),
        "tier_id": tier["id"],
        "tier_version": terms["version"],
        "backer_id": f"backer-{uuid.uuid4().hex[:6]}",
        "amount": terms["price_amount"] + (shipping["shipping_amount"] if shipping else 0),
        "currency": terms["currency"],
        "shipping_region": shipping["region"] if shipping else None,
    }
    body.update(overrides)
    return body


async def reserve(client: httpx.AsyncClient, actors: Actors, campaign_id: str, body: dict[str, Any]) -> httpx.Response:
    return await client.post(f"/internal/campaigns/{campaign_id}/reservations", json=body, headers=actors.service)


async def pledge(
    client: httpx.AsyncClient, actors: Actors, campaign_id: str, tier: dict[str, Any], **overrides: Any
) -> dict[str, Any]:
    """reserve + confirm, as the pledges service does after a successful payment."""
    body = reservation_body(tier, **overrides)
    response = await reserve(client, actors, campaign_id, body)
    assert response.status_code == 201, response.text
    confirmed = await client.post(
        f"/internal/campaigns/{campaign_id}/reservations/{body['pledge_id']}/confirm", headers=actors.service
    )
    assert confirmed.status_code == 200, confirmed.text
    return confirmed.json()  # type: ignore[no-any-return]


async def outbox_events(database_url: str, event_type: str | None = None) -> list[dict[str, Any]]:
    """The events this service committed to its outbox (what the relay will deliver)."""
    from sqlalchemy import select

    from services.campaigns.models import OutboxEvent
    from shared.db import Database

    db = Database(database_url)
    try:
        async with db.read_sessions() as session:
            statement = select(OutboxEvent).order_by(OutboxEvent.created_at)
            if event_type is not None:
                statement = statement.where(OutboxEvent.type == event_type)
            rows = (await session.execute(statement)).scalars().all()
            return [{"id": str(row.id), "type": row.type, "payload": row.payload} for row in rows]
    finally:
        await db.dispose()


async def totals(client: httpx.AsyncClient, actors: Actors, campaign_id: str) -> dict[str, Any]:
    response = await client.get(f"/internal/campaigns/{campaign_id}/totals", headers=actors.service)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
