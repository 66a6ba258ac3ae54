"""Every object type the server returns has the field names and JSON types of Stripe's official
sample of that type (shared/stripe/fixtures3.json, from stripe/openapi).

The sample is one snapshot: a field it shows as an object may be null in a given answer. A null
is accepted only where Stripe itself answered null for that field in the recorded traffic, and a
field absent from the sample only where Stripe's recorded answers have it; the few remaining
differences are listed below with their reason.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .conftest import Api, shared_dir

FIXTURES: dict[str, Any] = json.loads((shared_dir() / "stripe" / "fixtures3.json").read_text())["resources"]

# (type, dotted path) -> reason
EXTRA_FIELDS = {
    ("refund", "pending_reason"): "present while a refund is pending (API reference, 2025-04-30.basil)",
    ("refund", "failure_reason"): "present once a refund failed (API reference)",
    ("refund", "failure_balance_transaction"): "present once a refund failed (API reference)",
    ("refund", "destination_details.card.reference_status"): "in 2026-08-26.dahlia refund answers "
    "(stripe_world cassette 05_refunds_disputes)",
    ("refund", "destination_details.card.reference_type"): "same as reference_status",
    ("webhook_endpoint", "secret"): "returned by the create call only (API reference)",
    ("charge", "refunds.total_count"): "the expanded refunds list carries total_count (cassette 05)",
    ("payment_intent", "next_action.use_stripe_sdk"): "the 3-D Secure next action (API reference)",
    ("setup_intent", "next_action.use_stripe_sdk"): "the 3-D Secure next action (API reference)",
    ("event", "data.previous_attributes"): "present on *.updated events (API reference)",
}
MISSING_FIELDS = {
    ("charge", "refunds"): "since 2022-11-15 a charge lists its refunds only when expanded (cassette 05)",
}
NULLABLE = {
    ("webhook_endpoint", "description"): "nullable in the API reference",
}
# An event's data.object is whichever object changed; it is checked as that object instead.
OPAQUE = {("event", "data.object"), ("event", "data.previous_attributes")}


def _jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _objects(value: Any, found: list[dict[str, Any]]) -> None:
    """Every Stripe object (a hash with an ``object`` field) nested anywhere in an answer."""
    if isinstance(value, dict):
        if isinstance(value.get("object"), str) and "id" in value:
            found.append(value)
        for item in value.values():
            _objects(item, found)
    elif isinstance(value, list):
        for item in value:
            _objects(item, found)


def _recorded_examples() -> dict[str, list[dict[str, Any]]]:
    examples: dict[str, list[dict[str, Any]]] = {}
    for path in (shared_dir() / "stripe" / "recorded").glob("*.json"):
        for step in json.loads(path.read_text())["steps"]:
            found: list[dict[str, Any]] = []
            _objects(step["recorded_body"], found)
            for obj in found:
                kind = "deleted_" + obj["object"] if obj.get("deleted") else obj["object"]
                examples.setdefault(kind, []).append(obj)
    return examples


RECORDED = _recorded_examples()


def _is_object(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("object"), str) and "id" in value


def check(
    kind: str, sample: dict[str, Any] | None, ours: dict[str, Any], seen: list[dict[str, Any]], path: str = ""
) -> list[str]:
    """``sample``: Stripe's sample at this level (None when the sample has null here); ``seen``: what
    Stripe answered at this level in the recorded traffic."""
    problems: list[str] = []
    known = set(sample or {}).union(*(s.keys() for s in seen))
    for name in sample or {}:
        if name not in ours and (kind, path + name) not in MISSING_FIELDS:
            problems.append(f"{kind}.{path}{name}: missing (Stripe's sample has it)")
    for name, value in ours.items():
        where = path + name
        if name not in known:
            if (kind, where) not in EXTRA_FIELDS:
                problems.append(f"{kind}.{where}: neither in Stripe's sample nor in its recorded answers")
            continue
        if (kind, where) in OPAQUE:
            continue
        expected = (sample or {}).get(name)
        seen_values = [s[name] for s in seen if name in s]
        if name == "metadata":  # free-form keys; values are strings
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                problems.append(f"{kind}.{where}: metadata must map strings to strings")
            continue
        if _is_object(value) and (isinstance(expected, str) or any(isinstance(v, str) for v in seen_values)):
            continue  # an expanded id: checked as an object of its own type
        if value is None:
            nullable = (expected is None and name in (sample or {})) or any(v is None for v in seen_values)
            if not nullable and (kind, where) not in NULLABLE:
                problems.append(f"{kind}.{where}: null, but Stripe never answered null there")
            continue
        types = {_jtype(expected)} - {"null"} or {_jtype(v) for v in seen_values} - {"null"}
        if types and _jtype(value) not in types:
            problems.append(f"{kind}.{where}: JSON type {_jtype(value)}, Stripe's is {sorted(types)}")
            continue
        if isinstance(value, dict):
            problems += check(
                kind,
                expected if isinstance(expected, dict) else None,
                value,
                [v for v in seen_values if isinstance(v, dict)],
                where + ".",
            )
        elif isinstance(value, list) and value and not _is_object(value[0]):
            examples = [lst[0] for lst in [expected, *seen_values] if isinstance(lst, list) and lst]
            if examples and _jtype(value[0]) != _jtype(examples[0]):
                problems.append(
                    f"{kind}.{where}[]: items of type {_jtype(value[0])}, Stripe's are {_jtype(examples[0])}"
                )
            elif isinstance(value[0], dict):
                problems += check(
                    kind,
                    examples[0] if examples else None,
                    value[0],
                    [e for e in examples[1:] if isinstance(e, dict)],
                    where + "[].",
                )
    return problems


async def _exercise(api: Api) -> list[dict[str, Any]]:
    """Drive every flow once and collect every object the server answers with."""
    answers: list[Any] = []

    async def call(method: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await api.request(method, path, params)
        answers.append(response.json())
        return response.json()

    endpoint = await call("POST", "/v1/webhook_endpoints", {"url": "http://127.0.0.1:9/hook", "enabled_events": ["*"]})
    await call("GET", f"/v1/webhook_endpoints/{endpoint['id']}")
    customer = await call("POST", "/v1/customers", {"email": "f@example.com", "metadata": {"k": "v"}})
    pm = await call("POST", "/v1/payment_methods", {"type": "card", "card": {"token": "tok_visa"}})
    await call("POST", f"/v1/payment_methods/{pm['id']}/attach", {"customer": customer["id"]})
    await call(
        "POST",
        f"/v1/customers/{customer['id']}",
        {"invoice_settings": {"default_payment_method": pm["id"]}, "name": "F"},
    )
    seti = await call(
        "POST",
        "/v1/setup_intents",
        {
            "customer": customer["id"],
            "usage": "off_session",
            "payment_method": "pm_card_visa",
            "confirm": True,
            "payment_method_types": ["card"],
        },
    )
    await call("GET", f"/v1/setup_intents/{seti['id']}", {"expand": ["payment_method"]})
    await call(
        "POST",
        "/v1/setup_intents",
        {"payment_method": "pm_card_chargeDeclined", "confirm": True, "payment_method_types": ["card"]},
    )
    await call(
        "POST",
        "/v1/setup_intents",
        {"payment_method": "pm_card_authenticationRequired", "confirm": True, "payment_method_types": ["card"]},
    )
    await call("POST", "/v1/setup_intents", {})
    paid = await call(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 5000,
            "currency": "usd",
            "customer": customer["id"],
            "payment_method": pm["id"],
            "confirm": True,
            "off_session": True,
            "metadata": {"pledge_id": "1"},
        },
    )
    await call("GET", f"/v1/payment_intents/{paid['id']}", {"expand": ["latest_charge", "customer"]})
    await call(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 5000,
            "currency": "usd",
            "confirm": True,
            "payment_method": "pm_card_chargeDeclinedInsufficientFunds",
            "payment_method_types": ["card"],
        },
    )
    await call(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 5000,
            "currency": "usd",
            "customer": customer["id"],
            "payment_method": "pm_card_authenticationRequired",
            "confirm": True,
            "off_session": True,
        },
    )
    await call(
        "POST",
        "/v1/payment_intents",
        {
            "amount": 5000,
            "currency": "usd",
            "payment_method": "pm_card_authenticationRequired",
            "confirm": True,
            "payment_method_types": ["card"],
        },
    )
    held = await call(
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
    await call("POST", f"/v1/payment_intents/{held['id']}/cancel", {"cancellation_reason": "abandoned"})
    await call("POST", "/v1/refunds", {"payment_intent": paid["id"], "amount": 1000, "reason": "duplicate"})
    for token in ("pm_card_pendingRefund", "pm_card_refundFail"):
        intent = await call(
            "POST",
            "/v1/payment_intents",
            {
                "amount": 2000,
                "currency": "usd",
                "confirm": True,
                "payment_method": token,
                "payment_method_types": ["card"],
            },
        )
        await call("POST", "/v1/refunds", {"payment_intent": intent["id"]})
    await api.local("POST", "advance")
    await call("GET", "/v1/refunds", {"limit": 100})
    await call("GET", f"/v1/charges/{paid['latest_charge']}", {"expand": ["refunds"]})
    await call("GET", "/v1/charges", {"limit": 100})
    await call("GET", "/v1/events", {"limit": 100})
    await call("DELETE", f"/v1/customers/{customer['id']}")
    await call("GET", f"/v1/customers/{customer['id']}")
    found: list[dict[str, Any]] = []
    _objects(answers, found)
    events = [o for o in found if o["object"] == "event"]
    _objects([e["data"]["object"] for e in events], found)
    return found


async def test_every_object_type_matches_stripes_sample(api: Api) -> None:
    objects = await _exercise(api)
    kinds = {("deleted_" + o["object"]) if o.get("deleted") else o["object"] for o in objects}
    assert kinds >= {
        "customer",
        "deleted_customer",
        "payment_method",
        "payment_intent",
        "charge",
        "refund",
        "setup_intent",
        "event",
        "webhook_endpoint",
    }
    problems: set[str] = set()
    for obj in objects:
        kind = ("deleted_" + obj["object"]) if obj.get("deleted") else obj["object"]
        assert kind in FIXTURES, f"no official sample for {kind}"
        problems.update(check(kind, FIXTURES[kind], obj, RECORDED.get(kind, [])))
    assert not problems, "\n".join(sorted(problems))


def test_the_check_catches_a_wrong_type_and_a_missing_field() -> None:
    sample = FIXTURES["refund"]
    wrong = {**sample, "amount": "100"}
    del wrong["currency"]
    problems = check("refund", sample, wrong, [])
    assert any("amount: JSON type string" in p for p in problems)
    assert any("currency: missing" in p for p in problems)


@pytest.mark.parametrize("kind", ["customer", "payment_intent", "setup_intent", "charge", "payment_method"])
def test_the_recordings_cover_the_types_we_lean_on(kind: str) -> None:
    assert RECORDED.get(kind), f"no recorded {kind} to learn nullability from"
