# The SDK's types follow its newer API version; these tests also send 2026-08-26 parameters
# (payment_method_types) and read optional fields without narrowing, which the types reject.
# mypy: disable-error-code="arg-type,typeddict-unknown-key,typeddict-item,union-attr,index"
"""The official SDK against the real server process: each flow the services use, with the SDK's
own exception classes, and webhooks that ``stripe.Webhook.construct_event`` accepts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import stripe

from stripe_local.testing import StripeLocalProcess

from .conftest import WebhookReceiver

# The SDK's HTTPXClient posts with ``data=``, which httpx deprecates; that is the SDK's business.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


@pytest.fixture
def server(stripe_local_session_server: StripeLocalProcess) -> Iterator[StripeLocalProcess]:
    yield stripe_local_session_server
    # Runtime knobs are global to the shared process: put them back for the next test.
    stripe_local_session_server.local("DELETE", "faults")
    stripe_local_session_server.local("POST", "rate_limit", json={"limit_per_second": 0})


@pytest.fixture
async def client(server: StripeLocalProcess) -> AsyncIterator[stripe.StripeClient]:
    http_client = stripe.HTTPXClient()
    yield stripe.StripeClient(
        "sk_test_local", base_addresses={"api": server.url}, http_client=http_client, max_network_retries=2
    )
    await http_client._client_async.aclose()


async def _customer_with_card(client: stripe.StripeClient, token: str = "pm_card_visa") -> tuple[Any, Any]:
    customer = await client.v1.customers.create_async(params={"email": "backer@example.com"})
    seti = await client.v1.setup_intents.create_async(
        params={
            "customer": customer.id,
            "payment_method": token,
            "usage": "off_session",
            "confirm": True,
            "payment_method_types": ["card"],
        }
    )
    return customer, seti


async def test_setup_intent_saves_a_card_then_an_off_session_payment_succeeds(client: stripe.StripeClient) -> None:
    customer, seti = await _customer_with_card(client)
    assert (seti.status, seti.usage) == ("succeeded", "off_session")
    pm = await client.v1.payment_methods.retrieve_async(seti.payment_method)
    assert pm.customer == customer.id
    pi = await client.v1.payment_intents.create_async(
        params={
            "amount": 2500,
            "currency": "usd",
            "customer": customer.id,
            "payment_method": pm.id,
            "confirm": True,
            "off_session": True,
            "metadata": {"pledge_id": "p-1"},
        },
        options={"idempotency_key": f"pledge:{uuid.uuid4()}:charge"},
    )
    assert (pi.status, pi.amount_received) == ("succeeded", 2500)
    charge = await client.v1.charges.retrieve_async(pi.latest_charge)
    assert (charge.paid, charge.captured, charge.amount_captured) == (True, True, 2500)


async def test_manual_capture_then_partial_capture_and_cancel(client: stripe.StripeClient) -> None:
    params = {
        "amount": 4000,
        "currency": "usd",
        "payment_method": "pm_card_mastercard",
        "confirm": True,
        "capture_method": "manual",
        "payment_method_types": ["card"],
    }
    held = await client.v1.payment_intents.create_async(params=params)
    assert (held.status, held.amount_capturable) == ("requires_capture", 4000)
    captured = await client.v1.payment_intents.capture_async(held.id, params={"amount_to_capture": 3000})
    assert (captured.status, captured.amount_received) == ("succeeded", 3000)
    other = await client.v1.payment_intents.create_async(params=params)
    canceled = await client.v1.payment_intents.cancel_async(other.id, params={"cancellation_reason": "abandoned"})
    assert canceled.status == "canceled"
    with pytest.raises(stripe.InvalidRequestError) as info:
        await client.v1.payment_intents.capture_async(other.id)
    assert info.value.code == "payment_intent_unexpected_state"


@pytest.mark.parametrize(
    ("token", "decline_code"),
    [
        ("pm_card_chargeDeclined", "generic_decline"),
        ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ],
)
async def test_a_declined_card_raises_card_error_with_its_decline_code(
    client: stripe.StripeClient, token: str, decline_code: str
) -> None:
    with pytest.raises(stripe.CardError) as info:
        await client.v1.payment_intents.create_async(
            params={
                "amount": 1000,
                "currency": "usd",
                "payment_method": token,
                "confirm": True,
                "payment_method_types": ["card"],
            }
        )
    error = info.value
    assert (error.http_status, error.code, error.error.decline_code) == (402, "card_declined", decline_code)
    intent = await client.v1.payment_intents.retrieve_async(error.error.payment_intent.id)
    assert intent.status == "requires_payment_method"
    assert intent.last_payment_error.decline_code == decline_code


async def test_off_session_payment_needing_authentication_raises_authentication_required(
    client: stripe.StripeClient,
) -> None:
    customer, _ = await _customer_with_card(client)
    pm = await client.v1.payment_methods.attach_async(
        "pm_card_authenticationRequired", params={"customer": customer.id}
    )
    with pytest.raises(stripe.CardError) as info:
        await client.v1.payment_intents.create_async(
            params={
                "amount": 1000,
                "currency": "usd",
                "customer": customer.id,
                "payment_method": pm.id,
                "confirm": True,
                "off_session": True,
            }
        )
    assert (info.value.code, info.value.error.decline_code) == ("authentication_required", "authentication_required")


async def test_refund_refusals_are_invalid_request_errors_with_stripes_codes(client: stripe.StripeClient) -> None:
    pi = await client.v1.payment_intents.create_async(
        params={
            "amount": 3000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "payment_method_types": ["card"],
        }
    )
    refund = await client.v1.refunds.create_async(
        params={
            "payment_intent": pi.id,
            "amount": 1000,
            "reason": "requested_by_customer",
            "metadata": {"pledge_id": "p-2"},
        }
    )
    assert (refund.status, refund.amount, refund.reason) == ("succeeded", 1000, "requested_by_customer")
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        await client.v1.refunds.create_async(params={"payment_intent": pi.id, "amount": 2500})
    assert too_much.value.param == "amount"
    assert "greater than unrefunded amount on charge ($20.00)" in str(too_much.value.user_message)
    await client.v1.refunds.create_async(params={"charge": pi.latest_charge})
    with pytest.raises(stripe.InvalidRequestError) as again:
        await client.v1.refunds.create_async(params={"payment_intent": pi.id})
    assert again.value.code == "charge_already_refunded"
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        await client.v1.refunds.create_async(params={"charge": "ch_nope"})
    assert (unknown.value.http_status, unknown.value.code) == (404, "resource_missing")
    held = await client.v1.payment_intents.create_async(
        params={
            "amount": 3000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "capture_method": "manual",
            "payment_method_types": ["card"],
        }
    )
    with pytest.raises(stripe.InvalidRequestError) as uncaptured:
        await client.v1.refunds.create_async(params={"payment_intent": held.id})
    assert "You must cancel the PaymentIntent" in str(uncaptured.value.user_message)
    listed = await client.v1.refunds.list_async(params={"payment_intent": pi.id})
    assert sorted(r.amount for r in listed.data) == [1000, 2000]


async def test_same_key_replays_and_different_parameters_raise_idempotency_error(
    client: stripe.StripeClient,
) -> None:
    key = f"pledge:{uuid.uuid4()}:charge"
    params = {
        "amount": 1500,
        "currency": "usd",
        "payment_method": "pm_card_visa",
        "confirm": True,
        "payment_method_types": ["card"],
    }
    first = await client.v1.payment_intents.create_async(params=params, options={"idempotency_key": key})
    again = await client.v1.payment_intents.create_async(params=params, options={"idempotency_key": key})
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    with pytest.raises(stripe.IdempotencyError):
        await client.v1.payment_intents.create_async(
            params={**params, "amount": 1600}, options={"idempotency_key": key}
        )


async def test_the_rate_limiter_answers_429_rate_limit(client: stripe.StripeClient, server: StripeLocalProcess) -> None:
    server.local("POST", "rate_limit", json={"limit_per_second": 1})  # one token a second: robust to a slow host

    async def burst() -> None:
        for _ in range(10):
            await client.v1.customers.create_async(params={"email": "fast@example.com"})

    with pytest.raises(stripe.RateLimitError) as info:
        await burst()
    # The SDK's RateLimitError does not copy ``code`` onto itself; it is in the body.
    assert (info.value.http_status, info.value.json_body["error"]["code"]) == (429, "rate_limit")
    await client.v1.customers.list_async(params={"limit": 1})  # another endpoint has its own bucket


async def test_injected_500s_exhaust_the_sdk_retries(client: stripe.StripeClient, server: StripeLocalProcess) -> None:
    server.local("POST", "faults", json={"error_rate": 1.0, "mix": {"500": 1}})
    with pytest.raises(stripe.APIError):
        await client.v1.customers.create_async(params={"email": "x@example.com"})
    assert server.local("GET", "faults")["injected"] == {"500": 3}  # the first try and two retries


async def test_dropped_responses_are_retried_and_the_payment_happens_exactly_once(
    client: stripe.StripeClient, server: StripeLocalProcess
) -> None:
    pledge = str(uuid.uuid4())
    server.local("POST", "faults", json={"error_rate": 1.0, "mix": {"drop": 1}, "max_faults": 2})
    pi = await client.v1.payment_intents.create_async(
        params={
            "amount": 2000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "payment_method_types": ["card"],
            "metadata": {"pledge_id": pledge},
        },
        options={"idempotency_key": f"pledge:{pledge}:charge"},
    )
    assert pi.status == "succeeded"
    assert pi.last_response.headers.get("Idempotent-Replayed") == "true"
    assert server.local("GET", "faults")["injected"] == {"drop": 2}
    created = server.local("GET", "payment_intents", **{"metadata[pledge_id]": pledge})["data"]
    assert [p["id"] for p in created] == [pi.id]


async def test_webhooks_verify_with_construct_event_and_a_tampered_one_is_rejected(
    client: stripe.StripeClient, webhook_receiver: WebhookReceiver
) -> None:
    endpoint = await client.v1.webhook_endpoints.create_async(
        params={"url": webhook_receiver.url, "enabled_events": ["payment_intent.succeeded"]}
    )
    assert endpoint.secret.startswith("whsec_")
    try:
        pi = await client.v1.payment_intents.create_async(
            params={
                "amount": 1200,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "payment_method_types": ["card"],
            }
        )
        await webhook_receiver.wait_for(lambda r: any(e["data"]["object"]["id"] == pi.id for e in r.events()))
        headers, payload, _ = next(d for d in webhook_receiver.deliveries if pi.id.encode() in d[1])
        event = stripe.Webhook.construct_event(payload.decode(), headers["stripe-signature"], endpoint.secret)
        assert (event.type, event.data.object.id) == ("payment_intent.succeeded", pi.id)
        tampered = payload.replace(b'"amount":1200', b'"amount":1')
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(tampered.decode(), headers["stripe-signature"], endpoint.secret)
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.Webhook.construct_event(payload.decode(), headers["stripe-signature"], "whsec_wrong")
    finally:
        await client.v1.webhook_endpoints.delete_async(endpoint.id)


async def test_a_missing_api_key_is_an_authentication_error(server: StripeLocalProcess) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.url}/v1/customers")
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "You did not provide an API key" in response.json()["error"]["message"]


async def test_health(server: StripeLocalProcess) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.url}/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
    await asyncio.sleep(0)


async def test_search_finds_a_payment_by_our_metadata(client: stripe.StripeClient) -> None:
    pledge = str(uuid.uuid4())
    pi = await client.v1.payment_intents.create_async(
        params={
            "amount": 1000,
            "currency": "usd",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "allowed_payment_method_types": ["card"],
            "metadata": {"pledge_id": pledge},
        }
    )
    found = await client.v1.payment_intents.search_async(params={"query": f"metadata['pledge_id']:'{pledge}'"})
    assert [p.id for p in found.data] == [pi.id]
