"""What users do, through the gateway only: creators launch campaigns, backers pledge."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.testing import auth_headers
from tools.stack import Stack

CHECKLIST = ("identity_verified", "prototype_evidence", "budget_plausible", "risks_disclosed", "fulfilment_plan")


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


@dataclass
class Live:
    id: str
    tier: dict[str, Any]
    creator: dict[str, str]
    operator: dict[str, str]


def launch_campaign(
    gateway: httpx.Client,
    *,
    funding_model: str = "flexible",
    cap_amount: int | None = 1_000_000,
    goal_amount: int = 10_000,
    price_amount: int = 5_000,
    deadline_in: timedelta = timedelta(days=20),
    quantity_limit: int | None = None,
) -> Live:
    creator = auth_headers(f"creator-{uuid.uuid4().hex[:6]}", "creator")
    operator = auth_headers(f"operator-{uuid.uuid4().hex[:6]}", "operator")
    body = {
        "title": "E2E campaign",
        "description": "End to end.",
        "currency": "USD",
        "goal_amount": goal_amount,
        "funding_model": funding_model,
        "deadline_at": (datetime.now(UTC) + deadline_in).isoformat(),
        "risks_and_challenges": "Some.",
        "budget": [{"label": "All", "cost_amount": goal_amount}],
        **({"cap_amount": cap_amount} if cap_amount else {"uncapped": True}),
    }
    campaign = ok(gateway.post("/v1/campaigns", json=body, headers=creator | _key()), 201)
    tier_body = {
        "title": "Reward",
        "description": "One thing.",
        "price_amount": price_amount,
        "items": [{"name": "Thing", "quantity": 1}],
        "estimated_delivery": "2027-06",
        "shipping": [],
        **({"quantity_limit": quantity_limit} if quantity_limit else {}),
    }
    tier = ok(gateway.post(f"/v1/campaigns/{campaign['id']}/tiers", json=tier_body, headers=creator | _key()), 201)
    base = f"/v1/campaigns/{campaign['id']}"
    ok(gateway.post(f"{base}/submit", headers=creator))
    ok(gateway.post(f"{base}/start-review", headers=operator))
    for item in CHECKLIST:
        ok(gateway.put(f"{base}/review-checklist/{item}", json={"result": "passed"}, headers=operator))
    ok(gateway.post(f"{base}/approve", headers=operator))
    ok(gateway.post(f"{base}/launch", headers=creator))
    return Live(campaign["id"], tier, creator, operator)


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def pledge_body(live: Live, payment_method: str = "pm_card_visa", bonus: int = 0) -> dict[str, Any]:
    terms = live.tier["terms"]
    return {
        "campaign_id": live.id,
        "tier_id": live.tier["id"],
        "tier_version": terms["version"],
        "amount": terms["price_amount"] + bonus,
        "payment_method": payment_method,
    }


def pledge(
    gateway: httpx.Client, live: Live, backer: str, *, payment_method: str = "pm_card_visa", key: str | None = None
) -> httpx.Response:
    headers = auth_headers(backer, "backer") | {"Idempotency-Key": key or uuid.uuid4().hex}
    return gateway.post("/v1/pledges", json=pledge_body(live, payment_method), headers=headers)


def cli_env(stack: Stack, token: str | None, gateway: str | None = None) -> dict[str, str]:
    """The environment of a `crowdfund` run against this stack (never the user's own config or token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROWDFUND_")}
    env["XDG_CONFIG_HOME"] = str(stack.config.data_dir / "cli-config")
    env["CROWDFUND_GATEWAY_URL"] = gateway or stack.config.url("gateway")
    if token:
        env["CROWDFUND_TOKEN"] = token
    return env


def crowdfund(
    stack: Stack, token: str | None, *args: str, gateway: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `crowdfund` command as a user runs it: a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "crowdfund_cli.main", *args],
        env=cli_env(stack, token, gateway),
        capture_output=True,
        text=True,
        timeout=60,
    )
