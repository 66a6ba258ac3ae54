"""The refunds service killed with SIGKILL in the middle of a batch, then restarted: still exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from services.refunds.config import Settings
from services.refunds.models import ItemStatus, RefundItem
from services.refunds.tests.fakes import FakePledges
from services.refunds.tests.support import (
    RefundsProcess,
    create_and_start_batch,
    eventually,
    seed_charged_pledges,
    stripe_refunds_by_intent,
    wait_for_batch,
)
from shared.db import Database
from shared.testing import auth_headers
from stripe_local.testing import StripeLocalProcess

OPERATOR = auth_headers("operator-1", "operator")
BATCH_SIZE = 600


@pytest.fixture
def refunds_process(settings: Settings, tmp_path: Path) -> Iterator[RefundsProcess]:
    env = {
        "REFUNDS_DATABASE_URL": settings.database_url,
        "REFUNDS_ENVIRONMENT": "test",
        "REFUNDS_LOG_LEVEL": "WARNING",
        "REFUNDS_PLEDGES_URL": settings.pledges_url,
        "REFUNDS_CAMPAIGNS_URL": settings.campaigns_url,
        "REFUNDS_STRIPE_API_BASE": settings.stripe_api_base or "",
        "REFUNDS_STRIPE_RATE_LIMIT_PER_SECOND": "0",
        "REFUNDS_WORKER_POLL_SECONDS": "0.05",
        # A killed process's leases expire quickly here (production: minutes).
        "REFUNDS_WORKER_LEASE_SECONDS": "3",
        "REFUNDS_WORKER_RETRY_DELAY_SECONDS": "0.2",
    }
    process = RefundsProcess(env, str(tmp_path / "refunds.log"))
    yield process
    process.stop()


async def test_killed_mid_batch_and_restarted_the_batch_completes_exactly_once(
    refunds_process: RefundsProcess,
    settings: Settings,
    fake_pledges: FakePledges,
    stripe_server: StripeLocalProcess,
    campaign_id: uuid.UUID,
) -> None:
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [600 + i for i in range(BATCH_SIZE)])
    # Slow refunds (150-200 ms: the batch lasts seconds, so the kill lands mid-batch): at the kill, dozens are in flight (sent to Stripe, their outcome not written yet).
    stripe_server.local("POST", "faults", json={"latency_ms": 150, "jitter_ms": 50, "path_prefix": "/v1/refunds"})
    refunds_process.start()
    async with httpx.AsyncClient(base_url=refunds_process.url, timeout=30) as client:
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)

        async def some_done() -> bool:
            body = (await client.get(f"/v1/refund-batches/{batch_id}", headers=OPERATOR)).json()
            return body["progress"]["done_items"] >= BATCH_SIZE // 4

        await eventually(some_done, timeout=60, interval=0.05, what="a quarter of the batch done")
    refunds_process.kill()
    await asyncio.sleep(0.5)  # requests the dead process had sent finish at Stripe
    at_kill = await stripe_refunds_by_intent(stripe_server)
    # Refunds Stripe made whose outcome the killed process never wrote: the dangerous ones.
    db = Database(settings.database_url)
    async with db.read_sessions() as session:
        unrecorded = set(
            (
                await session.execute(
                    select(RefundItem.stripe_payment_intent_id).where(RefundItem.status == ItemStatus.QUEUED)
                )
            ).scalars()
        ) & set(at_kill)
    await db.dispose()

    refunds_process.start()
    async with httpx.AsyncClient(base_url=refunds_process.url, timeout=30) as client:
        body = await wait_for_batch(client, batch_id, OPERATOR, timeout=90)
        report = (await client.get(f"/v1/refund-batches/{batch_id}/report?format=json", headers=OPERATOR)).json()

    assert body["progress"]["by_status"][0]["status"] == "succeeded"
    assert body["progress"]["by_status"][0]["count"] == BATCH_SIZE
    refunds = await stripe_refunds_by_intent(stripe_server)
    lines = {line["pledge_id"]: line for line in report["items"]}
    for pledge in pledges:
        made = refunds[pledge.charged_intent]
        assert len(made) == 1, (pledge.pledge_id, made)
        assert lines[str(pledge.pledge_id)]["stripe_refund_id"] == made[0]["id"]
    # The kill really interrupted work: some refunds Stripe had made were not yet recorded by us, and resumed
    # items were reconciled (their refund found at Stripe) rather than sent again.
    resumed = [line for line in report["items"] if line["attempts"] > 1]
    print(f"\n{len(resumed)} items resumed; {len(unrecorded)} refunded at Stripe but not recorded at the kill")
    assert resumed, "no item was interrupted by the kill"
    assert unrecorded, "the kill did not land between a Stripe call and its recording"
