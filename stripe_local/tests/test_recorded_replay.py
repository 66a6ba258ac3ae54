"""Replays every step of the real Stripe traffic in shared/stripe/recorded/ against the server.

Ids differ, so references resolve to the server's own earlier answers. Each step must give the
recorded status, the same error ``type``/``code``/``param`` and message (ids aside), every field
the real answer had and no other, with the same JSON type, and the same business values.
Deliberate differences are listed in DEVIATIONS with their reason, and each must still occur:
a deviation that no longer happens fails the test, so the list cannot rot.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .conftest import Api, shared_dir

RECORDINGS = sorted((shared_dir() / "stripe" / "recorded").glob("*.json"))

# (scenario, seq) -> {dotted path in the answer: reason}
DEVIATIONS: dict[tuple[str, int], dict[str, str]] = {
    ("04_money_path", 9): {
        "latest_charge.balance_transaction": "capture_method=automatic_async makes Stripe book the balance "
        "transaction a moment after answering (null here, a txn_ id later); the local server books it at once.",
    },
    ("04_money_path", 10): {
        "balance_transaction": "same as step 9: the balance transaction is booked synchronously.",
    },
    ("10_setup_intents", 6): {
        "usage": "the request asked usage=on_session and the recording answered off_session; the API reference "
        "documents that usage is honoured, so the local server answers on_session.",
    },
}

# Values compared for equality wherever they appear (ids, timestamps and secrets differ by nature).
BUSINESS = {
    "object",
    "status",
    "type",
    "amount",
    "amount_capturable",
    "amount_received",
    "amount_captured",
    "amount_refunded",
    "currency",
    "refunded",
    "captured",
    "paid",
    "usage",
    "capture_method",
    "deleted",
    "has_more",
    "cancellation_reason",
    "description",
    "email",
    "name",
    "metadata",
    "payment_method_types",
    "failure_code",
    "failure_message",
    "decline_code",
    "code",
    "param",
    "message",
    "last4",
    "brand",
    "funding",
    "country",
    "cvc_check",
    "allow_redisplay",
    "livemode",
    "confirmation_method",
    "setup_future_usage",
    "reason",
    "seller_message",
    "risk_level",
    "network_status",
    "advice_code",
    "network_decline_code",
    "network_advice_code",
    "enabled",
    "allow_redirects",
    "request_three_d_secure",
    "tax_exempt",
    "balance",
    "delinquent",
    "preferred_locales",
    "url",
    "display_brand",
    "regulated_status",
    "calculated_statement_descriptor",
    "disputed",
    "next_invoice_sequence",
    "payment_method_type",
    "network",
    "electronic_commerce_indicator",
    "maximum_amount_capturable",
    "amount_authorized",
    "transfer_group",
    "receipt_email",
}
_ID = re.compile(r"\b(?:cus|pm|pi|ch|seti|re|txn|evt|src|setatt|we|req|pmc)_[A-Za-z0-9]+")


def _jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _normalize(value: Any) -> Any:
    if isinstance(value, str):
        return _ID.sub("<id>", value)
    return value


class Comparison:
    def __init__(self, where: str, allowed: dict[str, str]) -> None:
        self.where = where
        self.allowed = allowed
        self.used: set[str] = set()
        self.problems: list[str] = []

    def problem(self, path: str, text: str) -> None:
        if path in self.allowed:
            self.used.add(path)
            return
        self.problems.append(f"{self.where} {path or '<body>'}: {text}")

    def compare(self, recorded: Any, ours: Any, path: str = "", key: str = "") -> None:
        rt, ot = _jtype(recorded), _jtype(ours)
        if rt != ot:
            self.problem(path, f"JSON type {ot} ({ours!r:.80}) where Stripe answered {rt} ({recorded!r:.80})")
            return
        if rt == "object":
            for name, value in recorded.items():
                sub = f"{path}.{name}" if path else name
                if name not in ours:
                    self.problem(sub, "missing")
                else:
                    self.compare(value, ours[name], sub, name)
            for name in ours.keys() - recorded.keys():
                self.problem(f"{path}.{name}" if path else name, "not in Stripe's answer")
            if key == "metadata" and recorded != ours:
                self.problem(path, f"{ours!r} != recorded {recorded!r}")
            return
        if rt == "array":
            if len(recorded) != len(ours):
                self.problem(path, f"{len(ours)} items where Stripe answered {len(recorded)}")
            if key in BUSINESS and [_normalize(v) for v in recorded] != [_normalize(v) for v in ours]:
                self.problem(path, f"{ours!r} != recorded {recorded!r}")
            for i, (r, o) in enumerate(zip(recorded, ours, strict=False)):
                self.compare(r, o, f"{path}[{i}]", key)
            return
        if key in BUSINESS and not (isinstance(recorded, str) and recorded.startswith("<redacted")):
            if _normalize(recorded) != _normalize(ours):
                self.problem(path, f"{ours!r} != recorded {recorded!r}")


def _resolve(value: Any, bound: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$ref"}:
            return _lookup(bound[value["$ref"]["step"]], value["$ref"]["field"])
        return {k: _resolve(v, bound) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, bound) for v in value]
    return value


def _lookup(body: Any, field: str) -> Any:
    for part in field.split("."):
        match = re.fullmatch(r"(\w+)((?:\[\d+\])*)", part)
        assert match, field
        body = body[match.group(1)]
        for index in re.findall(r"\[(\d+)\]", match.group(2)):
            body = body[int(index)]
    return body


@pytest.mark.parametrize("recording", RECORDINGS, ids=lambda p: Path(p).stem)
async def test_every_recorded_step_answers_like_stripe(recording: Path, api: Api) -> None:
    scenario = json.loads(recording.read_text())
    name = scenario["scenario"]
    bound: dict[str, Any] = {}
    problems: list[str] = []
    unused: list[str] = []
    for step in scenario["steps"]:
        path = step["path"]
        for placeholder, ref in step["path_refs"].items():
            path = path.replace("{" + placeholder + "}", str(_lookup(bound[ref["step"]], ref["field"])))
        params = _resolve(step["params"], bound)
        headers = {"Idempotency-Key": step["idempotency_key"]} if step["idempotency_key"] else {}
        response = await api.request(step["method"], path, params, headers)
        body = response.json()
        allowed = DEVIATIONS.get((name, step["seq"]), {})
        check = Comparison(f"{name} step {step['seq']} {step['method']} {step['path']}:", allowed)
        if response.status_code != step["recorded_status"]:
            check.problem(
                "",
                f"status {response.status_code} where Stripe answered {step['recorded_status']}: {response.text[:300]}",
            )
        else:
            check.compare(step["recorded_body"], body)
        problems += check.problems
        unused += [f"{name} step {step['seq']}: {p}" for p in set(allowed) - check.used]
        if step.get("binds_as"):
            bound[step["binds_as"]] = body
    assert not problems, "\n".join(problems)
    assert not unused, "listed deviations that no longer occur:\n" + "\n".join(unused)


def test_the_recordings_are_there() -> None:
    names = {p.stem for p in RECORDINGS}
    assert {"04_money_path", "06_customers_payment_methods", "10_setup_intents"} <= names
