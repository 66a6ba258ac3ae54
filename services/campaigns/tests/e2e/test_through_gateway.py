"""The campaigns service as creators, operators and the public reach it: real processes on loopback, every
public call through the gateway with real tokens, the internal API called directly with a service token."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.campaigns.tests.factories import CHECKLIST, campaign_body, tier_body
from shared.auth import ServiceTokenSource
from shared.settings import DEV_SERVICE_SECRET
from shared.testing import DatabaseFactory, auth_headers, mentions_number
from tools.stack import Stack, isolated_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "GATEWAY_RATE_LIMIT": "1000/second",
        "CAMPAIGNS_MIN_CAMPAIGN_DURATION_SECONDS": "1",
        "CAMPAIGNS_SCHEDULER_POLL_SECONDS": "0.2",
        "CAMPAIGNS_EVENT_RELAY_ENABLED": "false",
    }
    data_dir = tmp_path_factory.mktemp("campaigns-e2e")
    with isolated_stack(database_factory, data_dir, env, components=("campaigns", "gateway")) as running:
        yield running


def _ok(response: httpx.Response, status: int = 200) -> dict:
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_campaign_from_draft_to_closed_through_the_gateway(stack: Stack) -> None:
    creator = auth_headers(f"creator-{uuid.uuid4().hex[:6]}", "creator")
    operator = auth_headers("operator-e2e", "operator")
    service = {"Authorization": f"Bearer {ServiceTokenSource(DEV_SERVICE_SECRET, 'pledges').token()}"}
    deadline = (datetime.now(UTC) + timedelta(seconds=4)).isoformat()
    policy = {"amount_raised": "hidden", "backer_count": "hidden", "tier_availability": "coarse"}

    with (
        httpx.Client(base_url=stack.config.url("gateway"), timeout=10) as gateway,
        httpx.Client(base_url=stack.config.url("campaigns"), timeout=10) as internal,
    ):
        assert gateway.post("/v1/campaigns", json=campaign_body()).status_code == 401
        campaign = _ok(
            gateway.post(
                "/v1/campaigns",
                json=campaign_body(deadline_at=deadline, goal_amount=10_000, disclosure_policy=policy),
                headers=creator | {"Idempotency-Key": uuid.uuid4().hex},
            ),
            201,
        )
        base = f"/v1/campaigns/{campaign['id']}"
        tier = _ok(
            gateway.post(
                f"{base}/tiers", json=tier_body(quantity_limit=500), headers=creator | {"Idempotency-Key": "t1"}
            ),
            201,
        )
        assert gateway.get(base).status_code == 404  # a draft is not public
        _ok(gateway.post(f"{base}/submit", headers=creator))
        _ok(gateway.post(f"{base}/start-review", headers=operator))
        for item in CHECKLIST:
            _ok(gateway.put(f"{base}/review-checklist/{item}", json={"result": "passed"}, headers=operator))
        _ok(gateway.post(f"{base}/approve", headers=operator))
        _ok(gateway.post(f"{base}/launch", headers=creator))

        # The pledges service's calls go to the service directly; the gateway never routes /internal.
        assert gateway.post(f"/internal/campaigns/{campaign['id']}/reservations", json={}).status_code == 404
        pledge_id = str(uuid.uuid4())
        reservation = {
            "pledge_id": pledge_id,
            "tier_id": tier["id"],
            "tier_version": 1,
            "backer_id": "backer-e2e",
            "amount": 12_347,
            "currency": "USD",
            "shipping_region": "US",
        }
        _ok(internal.post(f"/internal/campaigns/{campaign['id']}/reservations", json=reservation, headers=service), 201)
        _ok(internal.post(f"/internal/campaigns/{campaign['id']}/reservations/{pledge_id}/confirm", headers=service))

        public = gateway.get(base)
        assert public.status_code == 200
        assert public.json()["funding"]["amount_raised_amount"] is None
        # Compare numbers, not text: a random UUID may contain the digits of a hidden figure.
        assert 12_347 not in _numbers(public.json())
        tiers = gateway.get(f"{base}/tiers").json()
        assert 499 not in _numbers(tiers)  # 500 - 1 left: coarse availability only
        assert all(t["availability"]["remaining_quantity"] is None for t in tiers)
        assert _ok(gateway.get(base, headers=creator))["funding"]["amount_raised_amount"] == 12_347

        closed = None
        for _ in range(100):
            closed = _ok(gateway.get(base))
            if closed["status"] != "live":
                break
            time.sleep(0.1)
        assert closed is not None
        assert closed["status"] == "succeeded"
        record = _ok(gateway.get(f"{base}/vetting-record"))
        assert [h["to_status"] for h in record["history"]][-1] == "succeeded"

    # The service's own log names the pledge and the close, never the total the policy hides.
    log = (stack.config.data_dir / "campaigns.log").read_text(errors="replace")
    assert pledge_id in log
    assert "campaign.closed" in log
    assert not mentions_number(log, 12347)  # as a number: a random UUID once held "...-649c93c12347"


def _numbers(value: Any) -> set[int]:
    """Every integer in a JSON document."""
    if isinstance(value, bool):
        return set()
    if isinstance(value, int):
        return {value}
    if isinstance(value, dict):
        return set().union(*(_numbers(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_numbers(v) for v in value)) if value else set()
    return set()
