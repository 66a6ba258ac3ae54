"""A pledge whose driver died mid-saga is finished or compensated by the sweeper, never done twice.

The crash is simulated by running the saga's persisted steps up to a point and abandoning the pledge with its
lease held; once the lease expires, the sweeper of any replica resumes it from the persisted step."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.pledges.app import create_app
from services.pledges.config import Settings
from services.pledges.models import Pledge, PledgeStatus, ReservationState
from services.pledges.pledges.repository import PledgeRepository
from services.pledges.pledges.saga import PledgeSaga, ref
from services.pledges.pledges.schemas import PledgeCreate
from services.pledges.pledges.service import pledge_service
from services.pledges.tests.factories import (
    Backer,
    LiveCampaign,
    idem,
    live_campaign,
    payment_intents,
    pledge_body,
    reservation,
    service_headers,
    setup_intents,
    totals,
)
from shared.testing import app_client
from stripe_local.testing import StripeLocalProcess, free_port

# Long enough that the steps run before the first sweep finish inside it on a loaded 2-core CI machine (0.5 s
# was not), short enough to wait out.
LEASE_SECONDS = 1.5


@pytest.fixture
def short_lease(settings: Settings) -> Settings:
    return settings.model_copy(update={"saga_lease_seconds": LEASE_SECONDS})


@pytest.fixture
async def service(short_lease: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    app = create_app(short_lease)
    async with app_client(app) as client:
        yield client, app


async def abandoned(
    app: FastAPI,
    campaign: LiveCampaign,
    steps: int,
    *,
    reserved: bool = False,
    card_saved: bool = False,
    committed: bool = False,
    **overrides: Any,
) -> Pledge:
    """A pledge whose driver ran ``steps`` saga steps and then died (its lease still held). Calls made inside
    the first step, before it wrote anything (its outcome is written only after both calls): ``reserved``,
    campaigns held the capacity pending (a flexible pledge, or an all-or-nothing one written before cards
    were saved first); ``card_saved``, Stripe saved the card; ``committed``, campaigns then held and
    committed the capacity."""
    runtime = app.state.pledges
    backer = Backer()
    started = await pledge_service.start(
        runtime, backer.id, idem()["Idempotency-Key"], PledgeCreate(**pledge_body(campaign, **overrides))
    )
    assert isinstance(started, tuple)
    pledge, _terms = started

    async def reserve(confirmed: bool) -> None:
        await runtime.campaigns.reserve(
            pledge_id=pledge.id,
            campaign_id=pledge.campaign_id,
            tier_id=pledge.tier_id,
            tier_version=pledge.terms_version,
            backer_id=pledge.backer_id,
            amount=pledge.total_amount,
            currency=pledge.currency,
            shipping_region=pledge.shipping_region,
            confirmed=confirmed,
        )

    if reserved:
        await reserve(confirmed=False)
    if card_saved:
        assert pledge.customer_key
        assert pledge.setup_intent_key
        assert pledge.payment_method_input
        await runtime.stripe.save_card(
            ref(pledge),
            customer_key=pledge.customer_key,
            setup_intent_key=pledge.setup_intent_key,
            payment_method=pledge.payment_method_input,
        )
    if committed:
        await reserve(confirmed=True)
    saga = PledgeSaga(runtime)
    for _ in range(steps):
        await saga.step(pledge)
    return pledge


async def legacy_confirming(app: FastAPI, campaign: LiveCampaign) -> Pledge:
    """An all-or-nothing pledge as the saga left it before cards were saved first: capacity held pending,
    card saved and written down (`confirming`), the confirm not made yet."""
    pledge = await abandoned(app, campaign, 0, reserved=True)
    await PledgeSaga(app.state.pledges)._authorize(pledge, reservation_state=ReservationState.PENDING)
    return pledge


async def status_of(client: httpx.AsyncClient, pledge_id: Any) -> dict[str, Any]:
    return (await client.get(f"/internal/pledges/{pledge_id}", headers=service_headers())).json()  # type: ignore[no-any-return]


async def sweep_after_lease(app: FastAPI) -> None:
    time.sleep(LEASE_SECONDS + 0.1)
    await app.state.pledge_worker.run_once()


@pytest.mark.parametrize(
    ("funding_model", "crash", "crashed_in"),
    [
        ("all_or_nothing", {}, PledgeStatus.RESERVING),  # row inserted, nothing called yet
        ("all_or_nothing", {"card_saved": True}, PledgeStatus.RESERVING),  # card saved, capacity not asked for
        # card saved and capacity committed, neither written down
        ("all_or_nothing", {"card_saved": True, "committed": True}, PledgeStatus.RESERVING),
        ("all_or_nothing", {"reserved": True}, PledgeStatus.RESERVING),  # held pending by the earlier saga
        ("all_or_nothing", "legacy", PledgeStatus.CONFIRMING),  # the earlier saga: card saved, not confirmed
        ("flexible", {"reserved": True}, PledgeStatus.RESERVING),  # capacity reserved, not charged yet
        ("flexible", {"steps": 1}, PledgeStatus.CONFIRMING),  # charged, reservation not confirmed yet
    ],
)
async def test_the_sweeper_finishes_a_pledge_abandoned_mid_saga(
    service: tuple[httpx.AsyncClient, FastAPI],
    campaigns: httpx.AsyncClient,
    stripe_server: StripeLocalProcess,
    funding_model: str,
    crash: dict[str, Any] | str,
    crashed_in: PledgeStatus,
) -> None:
    client, app = service
    campaign = await live_campaign(campaigns, funding_model=funding_model)
    if crash == "legacy":
        pledge = await legacy_confirming(app, campaign)
    else:
        assert isinstance(crash, dict)
        pledge = await abandoned(
            app, campaign, crash.get("steps", 0), **{k: v for k, v in crash.items() if k != "steps"}
        )
    assert pledge.status is crashed_in

    await app.state.pledge_worker.run_once()
    assert (await status_of(client, pledge.id))["status"] == crashed_in.value  # the lease still protects it
    await sweep_after_lease(app)

    seen = await status_of(client, pledge.id)
    assert seen["status"] == ("collected" if funding_model == "flexible" else "active")
    assert (await reservation(campaigns, campaign.id, str(pledge.id)))["status"] == "confirmed"
    held = await totals(campaigns, campaign.id)
    assert (held["committed_amount"], held["reserved_amount"]) == (pledge.total_amount, 0)  # held once
    if funding_model == "flexible":
        assert [i["status"] for i in payment_intents(stripe_server, str(pledge.id))] == ["succeeded"]
    else:
        assert [i["status"] for i in setup_intents(stripe_server, str(pledge.id))] == ["succeeded"]


async def test_an_earlier_hold_released_before_the_resume_fails_the_pledge_and_forgets_its_card(
    service: tuple[httpx.AsyncClient, FastAPI], campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    client, app = service
    campaign = await live_campaign(campaigns)
    pledge = await abandoned(app, campaign, 0, reserved=True)  # held pending by the earlier saga, then it died
    released = await campaigns.post(
        f"/internal/campaigns/{campaign.id}/reservations/{pledge.id}/release",
        json={"reason": "expired"},
        headers=service_headers(),
    )
    assert released.json()["status"] == "released"

    await sweep_after_lease(app)

    assert (await status_of(client, pledge.id))["status"] == "failed"
    async with app.state.pledges.db.read_sessions() as session:
        stored = await PledgeRepository(session).get(pledge.id)
    assert stored is not None
    assert (stored.failure_code, stored.payment_method_detached) == ("reservation_released", True)
    [saved] = setup_intents(stripe_server, str(pledge.id))
    detached = stripe_server.local("GET", "events", type="payment_method.detached")["data"]
    assert any(e["data"]["object"]["id"] == saved["payment_method"] for e in detached)
    held = await totals(campaigns, campaign.id)
    assert (held["committed_amount"], held["reserved_amount"], held["consistent"]) == (0, 0, True)


async def test_a_payment_made_but_never_recorded_is_found_again_not_made_twice(
    service: tuple[httpx.AsyncClient, FastAPI], campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    client, app = service
    campaign = await live_campaign(campaigns, funding_model="flexible")
    pledge = await abandoned(app, campaign, 0, reserved=True)
    # The process died after Stripe charged but before the answer was written down.
    assert pledge.payment_intent_key is not None
    await app.state.pledges.stripe.charge(
        ref(pledge),
        key=pledge.payment_intent_key,
        amount=pledge.total_amount,
        currency="USD",
        payment_method="pm_card_visa",
    )

    await sweep_after_lease(app)

    assert (await status_of(client, pledge.id))["status"] == "collected"
    assert len(payment_intents(stripe_server, str(pledge.id))) == 1


async def test_a_decline_whose_release_never_happened_is_compensated(
    service: tuple[httpx.AsyncClient, FastAPI], campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    client, app = service
    campaign = await live_campaign(campaigns, funding_model="flexible")
    pledge = await abandoned(app, campaign, 1, payment_method="pm_card_chargeDeclined")
    assert pledge.status is PledgeStatus.COMPENSATING
    assert (await reservation(campaigns, campaign.id, str(pledge.id)))["status"] == "pending"

    await sweep_after_lease(app)

    assert (await status_of(client, pledge.id))["status"] == "declined"
    assert (await reservation(campaigns, campaign.id, str(pledge.id)))["status"] == "released"


async def test_two_replicas_sweeping_at_once_resume_each_pledge_once(
    short_lease: Settings, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess
) -> None:
    first, second = create_app(short_lease), create_app(short_lease)
    async with app_client(first) as client, app_client(second):
        campaign = await live_campaign(campaigns, funding_model="flexible", cap_amount=None)
        pledges = [await abandoned(first, campaign, 0, reserved=True) for _ in range(6)]
        time.sleep(LEASE_SECONDS + 0.1)

        await asyncio.gather(first.state.pledge_worker.run_once(), second.state.pledge_worker.run_once())

        for pledge in pledges:
            assert (await status_of(client, pledge.id))["status"] == "collected"
            assert len(payment_intents(stripe_server, str(pledge.id))) == 1


@pytest.mark.parametrize("funding_model", ["flexible", "all_or_nothing"])
async def test_an_unreachable_campaigns_service_leaves_the_pledge_for_a_retry_with_the_same_key(
    settings: Settings, campaigns: httpx.AsyncClient, stripe_server: StripeLocalProcess, funding_model: str
) -> None:
    campaign = await live_campaign(campaigns, funding_model=funding_model)
    backer, key = Backer(), idem()
    body = pledge_body(campaign)
    # The campaign and tier facts are read (and cached) first; then the campaigns service goes away.
    cut_off = create_app(settings.model_copy(update={"campaign_cache_seconds": 60}))
    async with app_client(cut_off) as client:
        runtime = cut_off.state.pledges
        await runtime.campaigns.campaign(campaign.uuid)
        await runtime.campaigns.tier_version(campaign.uuid, campaign.tier_uuid, 1)
        runtime.campaigns._http._base = f"http://127.0.0.1:{free_port()}"  # the campaigns service goes away
        pending = await client.post("/v1/pledges", json=body, headers=backer.headers | key)
        assert (pending.status_code, pending.json()["code"]) == (503, "pledge_pending")
        assert pending.headers["retry-after"]

    async with app_client(create_app(settings)) as client:
        retried = await client.post("/v1/pledges", json=body, headers=backer.headers | key)

    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == pending.json()["pledge_id"]
    if funding_model == "flexible":
        assert len(payment_intents(stripe_server, retried.json()["id"])) == 1
    else:  # the card was saved before campaigns was found gone: the retry found that card, saved no other
        assert [i["status"] for i in setup_intents(stripe_server, retried.json()["id"])] == ["succeeded"]
        assert retried.json()["status"] == "active"
    state = await totals(campaigns, campaign.id)
    assert (state["committed_amount"], state["reserved_amount"]) == (body["amount"], 0)
