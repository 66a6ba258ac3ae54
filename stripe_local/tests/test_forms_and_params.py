"""Stripe's bracket form encoding parses exactly as the SDK sends it; parameters are checked with
Stripe's messages."""

from __future__ import annotations

import pytest

from stripe_local.errors import StripeError
from stripe_local.forms import parse_form
from stripe_local.params import Arr, Bool, Enum, Int, Meta, Obj, Str, validate

from .conftest import Api, encode


def test_the_sdk_encoding_round_trips() -> None:
    params = {
        "amount": 4900,
        "confirm": True,
        "expand": ["latest_charge", "customer"],
        "payment_method_types": ["card"],
        "metadata": {"pledge_id": "p-1", "7": "numeric key"},
        "card": {"token": "tok_visa"},
        "description": "",
    }
    parsed = parse_form(encode(params))
    assert parsed == {
        "amount": "4900",
        "confirm": "true",
        "expand": {"0": "latest_charge", "1": "customer"},
        "payment_method_types": {"0": "card"},
        "metadata": {"pledge_id": "p-1", "7": "numeric key"},
        "card": {"token": "tok_visa"},
        "description": "",
    }


def test_empty_brackets_append_like_curl_sends_them() -> None:
    assert parse_form("expand[]=a&expand[]=b&x[y][z]=1") == {"expand": {"0": "a", "1": "b"}, "x": {"y": {"z": "1"}}}


def test_percent_encoded_brackets_and_values() -> None:
    assert parse_form("metadata%5Bk%5D=a%26b&name=J%C3%BCrgen+X") == {"metadata": {"k": "a&b"}, "name": "Jürgen X"}


SPEC = {
    "amount": Int(required=True),
    "confirm": Bool(),
    "expand": Arr(Str()),
    "metadata": Meta(),
    "capture_method": Enum("automatic", "manual"),
    "card": Obj({"token": Str()}),
}


def test_validation_types_values() -> None:
    raw = parse_form("amount=10&confirm=false&expand[0]=x&metadata[k]=v&card[token]=t&capture_method=manual")
    assert validate(SPEC, raw) == {
        "amount": 10,
        "confirm": False,
        "expand": ["x"],
        "metadata": {"k": "v"},
        "card": {"token": "t"},
        "capture_method": "manual",
    }


@pytest.mark.parametrize(
    ("query", "message", "param", "code"),
    [
        ("amount=abc", "Invalid integer: abc", "amount", "parameter_invalid_integer"),
        ("amount=1&wat=x", "Received unknown parameter: wat", "wat", "parameter_unknown"),
        ("amount=1&card[nope]=x", "Received unknown parameter: card[nope]", "card[nope]", "parameter_unknown"),
        ("confirm=true", "Missing required param: amount.", "amount", "parameter_missing"),
        ("amount=1&confirm=maybe", "Invalid boolean: maybe", "confirm", None),
        (
            "amount=1&capture_method=later",
            "Invalid capture_method: must be one of automatic or manual",
            "capture_method",
            None,
        ),
    ],
)
def test_validation_errors_use_stripes_messages(query: str, message: str, param: str, code: str | None) -> None:
    with pytest.raises(StripeError) as info:
        validate(SPEC, parse_form(query))
    assert (info.value.message, info.value.param, info.value.code) == (message, param, code)


async def test_an_unknown_nested_parameter_is_refused_over_http(api: Api) -> None:
    response = await api.post("/v1/customers", {"invoice_settings": {"nope": "x"}})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "invoice_settings[nope]"
