"""Idempotency as Stripe documents it: a saved response is replayed (status and body, errors
included) with ``Idempotent-Replayed: true``; other parameters are an ``idempotency_error``; a key
whose first request is still running gets a 409; validation errors are never saved."""

from __future__ import annotations

import asyncio

from .conftest import Api

CHARGE = {
    "amount": 2000,
    "currency": "usd",
    "payment_method": "pm_card_visa",
    "confirm": True,
    "payment_method_types": ["card"],
    "metadata": {"pledge_id": "p-1"},
}


async def test_a_replay_returns_the_saved_answer_and_does_nothing_again(api: Api) -> None:
    first = await api.post("/v1/payment_intents", CHARGE, Idempotency_Key="pledge:1:charge")
    second = await api.post("/v1/payment_intents", CHARGE, Idempotency_Key="pledge:1:charge")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["original-request"] == first.headers["request-id"]
    assert "idempotent-replayed" not in first.headers
    assert second.headers["idempotency-key"] == "pledge:1:charge"
    intents = await api.local("GET", "payment_intents?metadata[pledge_id]=p-1")
    assert len(intents["data"]) == 1
    charges = await api.local("GET", f"charges?payment_intent={first.json()['id']}")
    assert len(charges["data"]) == 1


async def test_an_error_the_endpoint_produced_is_saved_and_replayed(api: Api) -> None:
    declined = {**CHARGE, "payment_method": "pm_card_chargeDeclined", "metadata": {"pledge_id": "p-2"}}
    first = await api.post("/v1/payment_intents", declined, Idempotency_Key="k-declined")
    second = await api.post("/v1/payment_intents", declined, Idempotency_Key="k-declined")
    assert (first.status_code, second.status_code) == (402, 402)
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    intents = await api.local("GET", "payment_intents?metadata[pledge_id]=p-2")
    assert len(intents["data"]) == 1


async def test_a_validation_error_is_not_saved(api: Api) -> None:
    bad = await api.post("/v1/customers", {"emial": "typo@example.com"}, Idempotency_Key="k-validate")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "parameter_unknown"
    good = await api.post("/v1/customers", {"email": "ok@example.com"}, Idempotency_Key="k-validate")
    assert good.status_code == 200
    assert "idempotent-replayed" not in good.headers


async def test_the_same_key_with_other_parameters_is_an_idempotency_error(api: Api) -> None:
    await api.post("/v1/payment_intents", CHARGE, Idempotency_Key="k-params")
    other = await api.post("/v1/payment_intents", {**CHARGE, "amount": 2001}, Idempotency_Key="k-params")
    assert other.status_code == 400
    error = other.json()["error"]
    assert error["type"] == "idempotency_error"
    assert error["message"].startswith("Keys for idempotent requests can only be used with the same parameters")


async def test_the_same_key_on_another_endpoint_is_an_idempotency_error(api: Api) -> None:
    await api.post("/v1/customers", {"email": "a@example.com"}, Idempotency_Key="k-endpoint")
    other = await api.post(
        "/v1/payment_methods", {"type": "card", "card": {"token": "tok_visa"}}, Idempotency_Key="k-endpoint"
    )
    assert (other.status_code, other.json()["error"]["type"]) == (400, "idempotency_error")


async def test_the_same_key_while_the_first_request_runs_is_a_409(api: Api) -> None:
    await api.local("POST", "faults", {"latency_ms": 300})
    first = asyncio.create_task(api.post("/v1/payment_intents", CHARGE, Idempotency_Key="k-race"))
    await asyncio.sleep(0.1)
    second = await api.post("/v1/payment_intents", CHARGE, Idempotency_Key="k-race")
    assert second.status_code == 409
    assert second.json()["error"]["type"] == "idempotency_error"
    assert second.json()["error"]["code"] == "idempotency_key_in_use"
    assert (await first).status_code == 200
    third = await api.post("/v1/payment_intents", CHARGE, Idempotency_Key="k-race")
    assert third.headers["idempotent-replayed"] == "true"


async def test_a_get_is_not_subject_to_idempotency(api: Api) -> None:
    created = await api.post("/v1/customers", {"email": "g@example.com"}, Idempotency_Key="k-get")
    response = await api.request("GET", f"/v1/customers/{created.json()['id']}", None, {"Idempotency-Key": "k-get"})
    assert response.status_code == 200
    assert "idempotent-replayed" not in response.headers
