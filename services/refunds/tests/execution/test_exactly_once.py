from __future__ import annotations

import time
import uuid

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakePledges
from services.refunds.tests.support import (
    create_and_start_batch,
    eventually,
    seed_charged_pledges,
    stripe_refunds_by_intent,
    wait_for_batch,
)
from shared.testing import app_client, auth_headers
from stripe_local.testing import StripeLocalProcess

OPERATOR = auth_headers("operator-1", "operator")
BATCH_SIZE = 2000


async def test_a_batch_of_2000_pledges_refunds_each_exactly_once(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    amounts = [500 + (i % 97) for i in range(BATCH_SIZE)]
    t0 = time.monotonic()
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, amounts)
    seeded = time.monotonic() - t0
    app = create_app(settings.model_copy(update={"worker_enabled": True, "stripe_max_concurrency": 32}))
    async with app_client(app) as client:
        t1 = time.monotonic()
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        body = await wait_for_batch(client, batch_id, OPERATOR, timeout=90)
        elapsed = time.monotonic() - t1
        print(
            f"\nseeded {BATCH_SIZE} intents in {seeded:.1f}s; batch done in {elapsed:.1f}s ({BATCH_SIZE / elapsed:.0f}/s)"
        )
        progress = body["progress"]
        assert progress["by_status"] == [
            {
                "status": "succeeded",
                "count": BATCH_SIZE,
                "amounts": [{"currency": "USD", "amount": sum(amounts), "count": BATCH_SIZE}],
            }
        ]

        # Every outcome reaches the pledges service too.
        async def all_reported() -> bool:
            return all(p.status == "refunded" for p in pledges)

        await eventually(all_reported, timeout=30, what="pledges told of every refund")
        # In bulk: one call per report round (whatever was due), not one per refund.
        print(f"{fake_pledges.report_requests} calls to pledges reported {len(fake_pledges.refund_calls)} outcomes")
        assert fake_pledges.report_requests <= BATCH_SIZE // 10

    refunds = await stripe_refunds_by_intent(stripe_server)
    for pledge in pledges:
        made = refunds.get(pledge.charged_intent, [])
        assert len(made) == 1, (pledge.pledge_id, made)
        assert made[0]["amount"] == pledge.charged_amount
        assert made[0]["status"] == "succeeded"
        assert len(pledge.refunds) == 1
