"""The pledges service as a real process: campaign.closed delivered by the campaigns relay, and a process
SIGKILLed in the middle of a pledge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.pledges.tests.conftest import ROOT, SERVICE_DIR, WEBHOOK_SECRET
from services.pledges.tests.factories import (
    Backer,
    idem,
    live_campaign,
    payment_intents,
    pledge_body,
    reservation,
    service_headers,
    setup_intents,
    totals,
)
from services.pledges.tests.processes import CampaignsProcess, ServiceProcess
from shared.testing import DatabaseFactory
from stripe_local.testing import StripeLocalProcess, free_port

pytestmark = pytest.mark.e2e


def pledges_process(
    database_url: str, campaigns_url: str, stripe_url: str, log_dir: Path, port: int | None = None
) -> ServiceProcess:
    return ServiceProcess(
        "pledges",
        {
            "PLEDGES_DATABASE_URL": database_url,
            "PLEDGES_ENVIRONMENT": "test",
            "PLEDGES_CAMPAIGNS_URL": campaigns_url,
            "PLEDGES_STRIPE_API_BASE": stripe_url,
            "PLEDGES_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PLEDGES_WORKER_POLL_SECONDS": "0.2",
            "PLEDGES_SAGA_LEASE_SECONDS": "1.5",
            "PLEDGES_CAMPAIGN_CACHE_SECONDS": "0",
        },
        log_dir,
        port=port,
    )


@pytest.fixture
def pledges_db(database_factory: DatabaseFactory) -> Iterator[str]:
    url = database_factory.fresh("pledges", SERVICE_DIR)
    yield url
    database_factory.drop(url)


async def eventually(probe: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.2)


async def test_campaign_closed_delivered_by_the_campaigns_relay_starts_the_charge_run(
    database_factory: DatabaseFactory,
    pledges_db: str,
    stripe_server: StripeLocalProcess,
    tmp_path: Path,
) -> None:
    port = free_port()
    campaigns_db = database_factory.fresh("campaigns", ROOT / "services" / "campaigns")
    with (
        CampaignsProcess(campaigns_db, tmp_path, pledges_events_url=f"http://127.0.0.1:{port}/internal/events") as cp,
        pledges_process(pledges_db, cp.url, stripe_server.url, tmp_path, port=port) as pp,
    ):
        async with (
            httpx.AsyncClient(base_url=cp.url, timeout=30) as campaigns,
            httpx.AsyncClient(base_url=pp.url, timeout=30) as pledges,
        ):
            campaign = await live_campaign(campaigns, goal_amount=7_000, deadline_in=3.0)
            backer = Backer()
            created = await pledges.post("/v1/pledges", json=pledge_body(campaign), headers=backer.headers | idem())
            assert created.status_code == 201, created.text
            pledge_id = created.json()["id"]

            async def collected() -> bool:
                seen = (await pledges.get(f"/internal/pledges/{pledge_id}", headers=service_headers())).json()
                return bool(seen["status"] == "collected")

            assert await eventually(collected), "the pledge was not charged after the campaign closed"
            [intent] = payment_intents(stripe_server, pledge_id)
            assert (intent["status"], intent["amount_received"]) == ("succeeded", 7_000)
            assert (await totals(campaigns, campaign.id))["committed_amount"] == 7_000
    database_factory.drop(campaigns_db)


@pytest.mark.parametrize(
    ("funding_model", "stalled_path"),
    [("all_or_nothing", "/v1/setup_intents"), ("flexible", "/v1/payment_intents")],
)
async def test_a_pledges_process_killed_mid_pledge_is_completed_after_restart_exactly_once(
    pledges_db: str,
    campaigns_server: str,
    stripe_server: StripeLocalProcess,
    tmp_path: Path,
    funding_model: str,
    stalled_path: str,
) -> None:
    async with httpx.AsyncClient(base_url=campaigns_server, timeout=30) as campaigns:
        campaign = await live_campaign(campaigns, funding_model=funding_model)
        backer, key = Backer(), idem()
        body = pledge_body(campaign)
        # Stripe answers the payment step slowly, so the process dies while it is in flight.
        stripe_server.local("POST", "faults", json={"latency_ms": 2_000, "path_prefix": stalled_path})
        first = pledges_process(pledges_db, campaigns_server, stripe_server.url, tmp_path).start()
        try:
            async with httpx.AsyncClient(base_url=first.url, timeout=30) as pledges:
                request = asyncio.create_task(pledges.post("/v1/pledges", json=body, headers=backer.headers | key))
                await asyncio.sleep(1.0)
                first.kill()
                with pytest.raises(httpx.HTTPError):
                    await request
        finally:
            first.kill()
            stripe_server.local("DELETE", "faults")

        with pledges_process(pledges_db, campaigns_server, stripe_server.url, tmp_path) as second:
            async with httpx.AsyncClient(base_url=second.url, timeout=30) as pledges:

                async def settled() -> dict[str, Any] | None:
                    items = (await pledges.get("/v1/pledges", headers=backer.headers)).json()["items"]
                    done = [p for p in items if p["status"] in ("active", "collected")]
                    return done[0] if done else None

                pledge = await eventually(settled)
                assert pledge is not None, "the sweeper did not complete the pledge"
                retried = await pledges.post("/v1/pledges", json=body, headers=backer.headers | key)

        pledge_id = pledge["id"]
        assert (retried.status_code, retried.json()["id"]) == (201, pledge_id)
        assert (await reservation(campaigns, campaign.id, pledge_id))["status"] == "confirmed"
        if funding_model == "flexible":
            assert [i["status"] for i in payment_intents(stripe_server, pledge_id)] == ["succeeded"]
        else:
            assert [i["status"] for i in setup_intents(stripe_server, pledge_id)] == ["succeeded"]
            assert payment_intents(stripe_server, pledge_id) == []
