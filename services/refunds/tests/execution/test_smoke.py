from __future__ import annotations

import uuid

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakePledges
from services.refunds.tests.support import eventually, seed_charged_pledges, stripe_refunds_by_intent
from shared.testing import app_client, auth_headers
from stripe_local.testing import StripeLocalProcess

OPERATOR = auth_headers("operator-1", "operator")


async def test_small_batch_runs_to_completion(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    pledges = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [1000 + i for i in range(20)])
    async with app_client(create_app(settings.model_copy(update={"worker_enabled": True}))) as client:
        created = await client.post(
            "/v1/refund-batches",
            json={"campaign_id": str(campaign_id), "reason": "smoke"},
            headers=OPERATOR | {"Idempotency-Key": "k1"},
        )
        batch_id = created.json()["id"]
        await client.post(f"/v1/refund-batches/{batch_id}/approve", headers=OPERATOR)
        await client.post(f"/v1/refund-batches/{batch_id}/start", headers=OPERATOR)

        async def completed() -> dict | None:
            body = (await client.get(f"/v1/refund-batches/{batch_id}", headers=OPERATOR)).json()
            return body if body["status"] == "completed" else None

        body = await eventually(completed, timeout=30, what="batch completed")
        print(body["progress"])
    refunds = await stripe_refunds_by_intent(stripe_server)
    for pledge in pledges:
        assert len(refunds[pledge.charged_intent]) == 1
    assert all(p.status == "refunded" for p in pledges)
