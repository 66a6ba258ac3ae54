from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from services.refunds.app import create_app
from services.refunds.config import Settings
from services.refunds.tests.fakes import FakePledge, FakePledges
from services.refunds.tests.support import create_and_start_batch, eventually, seed_charged_pledges
from shared.testing import app_client, auth_headers
from stripe_local.testing import StripeLocalProcess

OPERATOR = auth_headers("operator-1", "operator")


async def test_a_pending_refund_without_webhooks_is_settled_by_asking_stripe(
    settings: Settings, fake_pledges: FakePledges, stripe_server: StripeLocalProcess, campaign_id: uuid.UUID
) -> None:
    (pledge,) = await seed_charged_pledges(fake_pledges, stripe_server, campaign_id, [3300], card="pending_refund")
    app = create_app(settings.model_copy(update={"worker_enabled": True, "pending_recheck_seconds": 1.0}))
    async with app_client(app) as client:  # no webhook endpoint reaches this app
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        url = f"/v1/refund-batches/{batch_id}/report?format=json"

        async def status() -> str | None:
            line = (await client.get(url, headers=OPERATOR)).json()["items"][0]
            return line["status"] if line["status"] != "queued" else None

        assert await eventually(status, timeout=15, what="first outcome") == "pending"
        assert await eventually(lambda: _is(status, "succeeded"), timeout=20, what="pending -> succeeded")
        await eventually(lambda: _reported(pledge), timeout=10, what="pledges told")


async def _is(probe: Callable[[], Awaitable[str | None]], expected: str) -> bool:
    return await probe() == expected


async def _reported(pledge: FakePledge) -> bool:
    return bool(pledge.refunds) and next(iter(pledge.refunds.values()))["status"] == "succeeded"
