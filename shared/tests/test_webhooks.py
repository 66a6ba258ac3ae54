"""The shared webhook check against deliveries signed the way the local Stripe server (and Stripe) signs them."""

from __future__ import annotations

import time

import orjson
import pytest
import stripe

from shared.webhooks import TOLERANCE_SECONDS, NotAnEvent, verified_event
from stripe_local.webhooks import signature_header

SECRET = "whsec_test_0123456789abcdef0123456789abcdef"
EVENT = {"id": "evt_1", "type": "setup_intent.succeeded", "data": {"object": {"id": "seti_1", "amount": 1500}}}


def delivery(body: bytes, *, secret: str = SECRET, age: int = 0) -> tuple[bytes, str]:
    return body, signature_header(body, secret, int(time.time()) - age)


def test_a_signed_delivery_gives_its_event_as_a_plain_dict() -> None:
    event = verified_event(*delivery(orjson.dumps(EVENT)), SECRET)
    assert event == EVENT
    assert type(event) is dict
    assert type(event["data"]["object"]) is dict  # not a StripeObject


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda body, header: (body.replace(b"1500", b"1"), header), id="body-changed"),
        pytest.param(lambda body, header: (body, signature_header(body, "whsec_other", int(time.time()))), id="key"),
        pytest.param(lambda body, header: (body, None), id="no-header"),
        pytest.param(lambda body, header: (body, "garbage"), id="malformed-header"),
        pytest.param(lambda body, header: (body, header.replace("v1=", "v0=")), id="no-v1-signature"),
    ],
)
def test_a_delivery_that_does_not_match_its_signature_is_refused(tamper) -> None:
    body, header = tamper(*delivery(orjson.dumps(EVENT)))
    with pytest.raises(stripe.SignatureVerificationError):
        verified_event(body, header, SECRET)


def test_an_old_delivery_is_refused_and_a_recent_one_is_not() -> None:
    with pytest.raises(stripe.SignatureVerificationError, match="tolerance"):
        verified_event(*delivery(orjson.dumps(EVENT), age=TOLERANCE_SECONDS + 30), SECRET)
    assert verified_event(*delivery(orjson.dumps(EVENT), age=TOLERANCE_SECONDS - 30), SECRET)["id"] == "evt_1"


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", orjson.dumps({"type": "x"}), orjson.dumps({"id": 7, "type": "x"}), b"\xff\xfe{}"],
    ids=["not-json", "a-list", "no-id", "id-not-a-string", "not-utf8"],
)
def test_a_signed_body_that_is_not_an_event_is_refused(body: bytes) -> None:
    with pytest.raises(NotAnEvent):
        verified_event(*delivery(body), SECRET)
