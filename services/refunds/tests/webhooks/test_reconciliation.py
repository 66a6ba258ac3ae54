"""Refunds whose state changes after the fact, delivered by the Stripe server's real webhooks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakePledges, LoopbackServer
from services.refunds.tests.support import (
    create_and_start_batch,
    eventually,
    seed_charged_pledges,
    stripe_refunds_by_intent,
    wait_for_batch,
)
from shared.testing import auth_headers
from stripe_local.testing import StripeLocalProcess, free_port

OPERATOR = auth_headers("operator-1", "operator")


@pytest.fixture
def refunds_server(settings: Settings, stripe_server: StripeLocalProcess) -> Iterator[LoopbackServer]:
    """The refunds service on a real port (workers on), subscribed to the Stripe server's webhooks."""
    port = free_port()
    endpoint = httpx.post(
        f"{stripe_server.url}/v1/webhook_endpoints",
        data={"url": f"http://127.0.0.1:{port}/v1/webhooks/stripe/refunds", "enabled_events[]": "*"},
        headers={"Authorization": "Bearer sk_test_local"},
    ).json()
    app = create_app(
        settings.model_copy(update={"worker_enabled": True, "stripe_webhook_secret": SecretStr(endpoint["secret"])})
    )
    server = LoopbackServer(app, port=port, lifespan="on").start()
    yield server
    server.stop()
    httpx.delete(
        f"{stripe_server.url}/v1/webhook_endpoints/{endpoint['id']}", headers={"Authorization": "Bearer sk_test_local"}
    )


async def test_pending_then_succeeded_and_succeeded_then_failed_end_in_the_right_state(
    refunds_server: LoopbackServer,
    fake_pledges: FakePledges,
    stripe_server: StripeLocalProcess,
    campaign_id: uuid.UUID,
) -> None:
    pending = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [2100, 2200], card="pending_refund")
    failing = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [2300, 2400], card="refund_fails")
    plain = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [2500])
    async with httpx.AsyncClient(base_url=refunds_server.url, timeout=30) as client:
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        await wait_for_batch(client, batch_id, OPERATOR, timeout=30)

        async def settled() -> dict | None:
            report = (await client.get(f"/v1/refund-batches/{batch_id}/report?format=json", headers=OPERATOR)).json()
            lines = {line["pledge_id"]: line for line in report["items"]}
            done = all(lines[str(p.pledge_id)]["status"] == "succeeded" for p in pending) and all(
                lines[str(p.pledge_id)]["status"] == "failed" for p in failing
            )
            return lines if done else None

        lines = await eventually(settled, timeout=30, what="late refund states")
        batch = (await client.get(f"/v1/refund-batches/{batch_id}", headers=OPERATOR)).json()
        log = (await client.get(f"/v1/refund-batches/{batch_id}/audit-log", headers=OPERATOR)).json()

    for pledge in failing:
        line = lines[str(pledge.pledge_id)]
        assert line["failure_code"] == "expired_or_canceled_card"
        assert line["stripe_status"] == "failed"
        assert line["follow_up_required"] is True
        assert line["stripe_refund_id"]
    for pledge in pending:
        assert lines[str(pledge.pledge_id)]["stripe_status"] == "succeeded"
        assert lines[str(pledge.pledge_id)]["follow_up_required"] is False
    assert lines[str(plain[0].pledge_id)]["status"] == "succeeded"
    assert batch["progress"]["follow_up_items"] == 2
    assert sum(1 for e in log if e["action"] == "item_flagged") == 2

    # The pledges service hears the final state of each refund (its history shows it).
    async def told() -> bool:
        return all(next(iter(p.refunds.values()))["status"] == "failed" for p in failing if p.refunds) and all(
            p.refunds and next(iter(p.refunds.values()))["status"] == "succeeded" for p in pending
        )

    await eventually(told, timeout=15, what="pledges told of late states")
    assert all(p.status == "active" for p in failing)  # the money came back: nothing refunded any more

    # Never refunded again to the same card, automatically or otherwise.
    refunds = await stripe_refunds_by_intent(stripe_server)
    for pledge in [*pending, *failing, *plain]:
        assert len(refunds[pledge.charged_intent]) == 1
