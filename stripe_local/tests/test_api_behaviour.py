"""Behaviour beyond the recordings: authentication, routing, events for every state change,
expansion, 3-D Secure completion and the release of an authorization."""

from __future__ import annotations

import base64

from .conftest import Api


async def test_a_missing_or_live_key_is_refused_and_basic_auth_works(api: Api) -> None:
    missing = await api.client.get("/v1/customers")
    assert missing.status_code == 401
    assert missing.json() == {"error": {"message": missing.json()["error"]["message"], "type": "invalid_request_error"}}
    live = await api.client.get("/v1/customers", headers={"Authorization": "Bearer sk_live_abcdefghijkl1234"})
    assert live.status_code == 401
    assert "Invalid API Key provided: sk_live_" in live.json()["error"]["message"]
    basic = base64.b64encode(b"sk_test_local:").decode()
    assert (await api.client.get("/v1/customers", headers={"Authorization": f"Basic {basic}"})).status_code == 200


async def test_an_unknown_url_is_a_stripe_404(api: Api) -> None:
    response = await api.get("/v1/teapots")
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/teapots)")
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}


async def test_every_state_change_of_a_payment_creates_an_event(api: Api) -> None:
    pi = await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "payment_method_types": ["card"],
        },
    )
    await api.ok("POST", f"/v1/payment_intents/{pi['id']}/capture")
    await api.ok("POST", "/v1/refunds", {"payment_intent": pi["id"], "amount": 500})
    types = [e["type"] for e in (await api.ok("GET", "/v1/events", {"limit": 100}))["data"]][::-1]
    assert types == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.amount_capturable_updated",
        "charge.captured",
        "payment_intent.succeeded",
        "refund.created",
        "charge.refunded",
    ]
    only_intents = await api.ok("GET", "/v1/events", {"type": "payment_intent.*"})
    assert {e["type"].split(".")[0] for e in only_intents["data"]} == {"payment_intent"}


async def test_an_update_event_carries_the_previous_attributes(api: Api) -> None:
    customer = await api.ok("POST", "/v1/customers", {"email": "before@example.com", "metadata": {"a": "1"}})
    await api.ok(
        "POST", f"/v1/customers/{customer['id']}", {"email": "after@example.com", "metadata": {"a": "", "b": "2"}}
    )
    event = (await api.ok("GET", "/v1/events", {"type": "customer.updated"}))["data"][0]
    assert event["data"]["object"]["metadata"] == {"b": "2"}
    assert event["data"]["previous_attributes"] == {"email": "before@example.com", "metadata": {"a": "1", "b": None}}


async def test_expand_replaces_ids_with_objects(api: Api) -> None:
    customer = await api.ok("POST", "/v1/customers", {"email": "x@example.com"})
    pi = await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "customer": customer["id"],
            "payment_method_types": ["card"],
            "expand": ["latest_charge.payment_intent"],
        },
    )
    assert pi["latest_charge"]["object"] == "charge"
    assert pi["latest_charge"]["payment_intent"]["id"] == pi["id"]
    listed = await api.ok("GET", "/v1/payment_intents", {"expand": ["data.customer"]})
    assert listed["data"][0]["customer"]["email"] == "x@example.com"
    refused = await api.get(f"/v1/payment_intents/{pi['id']}", {"expand": ["amount"]})
    assert refused.status_code == 400
    assert "cannot be expanded (amount)" in refused.json()["error"]["message"]


async def test_three_d_secure_on_session_waits_for_the_customer(api: Api) -> None:
    pi = await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_authenticationRequired",
            "payment_method_types": ["card"],
        },
    )
    assert (pi["status"], pi["next_action"]["type"]) == ("requires_action", "use_stripe_sdk")
    done = await api.local("POST", f"payment_intents/{pi['id']}/authenticate", {"outcome": "succeed"})
    assert done["status"] == "succeeded"
    other = await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_authenticationRequired",
            "payment_method_types": ["card"],
        },
    )
    failed = await api.local("POST", f"payment_intents/{other['id']}/authenticate", {"outcome": "fail"})
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    refused = await api.post(
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_authenticationRequired",
            "payment_method_types": ["card"],
            "error_on_requires_action": True,
        },
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (402, "authentication_required")


async def test_canceling_an_authorization_releases_the_charge(api: Api) -> None:
    pi = await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "capture_method": "manual",
            "payment_method_types": ["card"],
        },
    )
    canceled = await api.ok("POST", f"/v1/payment_intents/{pi['id']}/cancel")
    assert (canceled["status"], canceled["cancellation_reason"]) == ("canceled", None)
    charge = await api.ok("GET", f"/v1/charges/{pi['latest_charge']}")
    assert (charge["captured"], charge["refunded"], charge["amount_refunded"]) == (False, True, 3000)


async def test_dashboard_methods_need_a_return_url_to_confirm_on_session(api: Api) -> None:
    params = {"amount": 3000, "currency": "usd", "confirm": True, "payment_method": "pm_card_visa"}
    refused = await api.post("/v1/payment_intents", params)
    assert refused.status_code == 400
    assert "`return_url`" in refused.json()["error"]["message"]
    assert (await api.post("/v1/payment_intents", {**params, "off_session": True})).status_code == 200
    never = {**params, "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"}}
    assert (await api.post("/v1/payment_intents", never)).status_code == 200


async def test_setup_future_usage_attaches_the_card_to_the_customer(api: Api) -> None:
    customer = await api.ok("POST", "/v1/customers", {"email": "save@example.com"})
    pi = await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "customer": customer["id"],
            "setup_future_usage": "off_session",
            "payment_method_types": ["card"],
        },
    )
    pm = await api.ok("GET", f"/v1/payment_methods/{pi['payment_method']}")
    assert pm["customer"] == customer["id"]


async def test_raw_card_numbers_are_checked(api: Api) -> None:
    bad = await api.post(
        "/v1/payment_methods",
        {"type": "card", "card": {"number": "4242424242424241", "exp_month": 1, "exp_year": 2040}},
    )
    assert (bad.status_code, bad.json()["error"]["code"]) == (402, "incorrect_number")
    expired = await api.post(
        "/v1/payment_methods",
        {"type": "card", "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2020}},
    )
    assert expired.json()["error"]["code"] == "invalid_expiry_year"
    good = await api.ok(
        "POST",
        "/v1/payment_methods",
        {"type": "card", "card": {"number": "5555555555554444", "exp_month": 1, "exp_year": 2040, "cvc": "123"}},
    )
    assert (good["card"]["brand"], good["card"]["last4"]) == ("mastercard", "4444")


async def test_the_sdks_allowed_payment_method_types_pins_the_types(api: Api) -> None:
    # The SDK's newer API version names the parameter allowed_payment_method_types.
    pi = await api.ok(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 3000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_visa",
            "allowed_payment_method_types": ["card"],
        },
    )
    assert (pi["status"], pi["allowed_payment_method_types"], pi["payment_method_types"]) == (
        "succeeded",
        ["card"],
        ["card"],
    )
    assert pi["automatic_payment_methods"] is None
    seti = await api.ok("POST", "/v1/setup_intents", {"excluded_payment_method_types": ["pix", "klarna"]})
    assert seti["payment_method_types"] == ["card", "bancontact", "link", "satispay"]
    assert seti["excluded_payment_method_types"] == ["pix", "klarna"]
