"""Every public route x every kind of caller → allowed or denied, as intended. A route missing from the
table fails the test: a new route cannot ship without someone deciding who may call it.

"deny" means the caller is refused before anything happens (401, 403, or 404 where existence itself is
private); "allow" means the request got past authorization (any other status: 2xx, or a business or
validation refusal such as 409/422). Requests use real resources owned by `creator` and `backer`."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.testing import auth_headers
from tests.e2e.flows import Live, launch_campaign, ok, pledge
from tools.stack import Stack

pytestmark = pytest.mark.e2e

CALLERS: dict[str, dict[str, str]] = {
    "anonymous": {},
    "backer": auth_headers("matrix-backer", "backer"),
    "other_backer": auth_headers("matrix-other-backer", "backer"),
    "creator": {},  # the campaign's creator: filled in from the launched campaign
    "other_creator": auth_headers("matrix-other-creator", "creator"),
    "operator": auth_headers("matrix-operator", "operator"),
}
DENIED = {401, 403, 404}

A, D = "allow", "deny"


def rule(anonymous: str, backer: str, other_backer: str, creator: str, other_creator: str, operator: str) -> dict:
    return dict(zip(CALLERS, (anonymous, backer, other_backer, creator, other_creator, operator), strict=True))


PUBLIC_READ = rule(A, A, A, A, A, A)
OPERATOR_ONLY = rule(D, D, D, D, D, A)
OWNER_CREATOR = rule(D, D, D, A, D, D)
OWNER_CREATOR_OR_OPERATOR = rule(D, D, D, A, D, A)
ANY_CREATOR = rule(D, D, D, A, A, D)
ANY_BACKER = rule(D, A, A, D, D, D)
OWN_PLEDGE = rule(D, A, D, D, D, D)
OWN_PLEDGE_OR_OPERATOR = rule(D, A, D, D, D, A)
SIGNED_WEBHOOK = rule(A, A, A, A, A, A)  # no JWT: the Stripe signature decides (a bad one is a 400)

# operationId -> who may call it.
MATRIX: dict[str, dict[str, str]] = {
    # campaigns: public pages, creators on their own campaigns, operators review
    "list_campaigns": PUBLIC_READ,
    "get_campaign": PUBLIC_READ,
    "list_tiers": PUBLIC_READ,
    "get_tier": PUBLIC_READ,
    "list_tier_versions": PUBLIC_READ,
    "get_tier_version": PUBLIC_READ,
    "get_vetting_record": PUBLIC_READ,
    "create_campaign": ANY_CREATOR,
    "update_campaign": OWNER_CREATOR,
    "create_tier": OWNER_CREATOR,
    "update_tier": OWNER_CREATOR,
    "delete_tier": OWNER_CREATOR,
    "submit_campaign": OWNER_CREATOR,
    "launch_campaign": OWNER_CREATOR,
    "cancel_campaign": OWNER_CREATOR_OR_OPERATOR,
    "list_review_queue": OPERATOR_ONLY,
    "start_campaign_review": OPERATOR_ONLY,
    "get_review_checklist": OPERATOR_ONLY,
    "record_checklist_item": OPERATOR_ONLY,
    "approve_campaign": OPERATOR_ONLY,
    "request_campaign_changes": OPERATOR_ONLY,
    "reject_campaign": OPERATOR_ONLY,
    "suspend_campaign": OPERATOR_ONLY,
    "reinstate_campaign": OPERATOR_ONLY,
    "list_campaign_audit_log": OPERATOR_ONLY,
    # pledges: backers on their own pledges, creators see their campaign's, operators everything
    "create_pledge": ANY_BACKER,
    "list_my_pledges": ANY_BACKER,
    "get_pledge": rule(D, A, D, A, D, A),  # its backer, the campaign's creator, operators
    "cancel_pledge": OWN_PLEDGE,
    "withdraw_pledge": OWN_PLEDGE,
    "accept_new_terms": OWN_PLEDGE,
    "update_pledge_payment_method": OWN_PLEDGE,
    "list_campaign_pledges": OWNER_CREATOR_OR_OPERATOR,
    "get_campaign_pledge_reconciliation": OWNER_CREATOR_OR_OPERATOR,
    # refunds: batches are operators' business; single refunds also the campaign's creator
    "create_refund_batch": OPERATOR_ONLY,
    "list_refund_batches": rule(D, D, D, A, A, A),  # creators see only the single refunds they asked for
    "get_refund_batch": OPERATOR_ONLY,  # this batch was made by an operator: a creator gets 404
    "list_refund_batch_exclusions": OPERATOR_ONLY,
    "list_refund_batch_audit_log": OPERATOR_ONLY,
    "approve_refund_batch": OPERATOR_ONLY,
    "start_refund_batch": OPERATOR_ONLY,
    "pause_refund_batch": OPERATOR_ONLY,
    "resume_refund_batch": OPERATOR_ONLY,
    "cancel_refund_batch": OPERATOR_ONLY,
    "stream_refund_batch_progress": OPERATOR_ONLY,
    "get_refund_batch_report": OPERATOR_ONLY,
    "create_single_refund": OWNER_CREATOR_OR_OPERATOR,
    "get_single_refund": OPERATOR_ONLY,  # asked by an operator: only operators (and its requester) see it
    "receive_stripe_webhook_pledges": SIGNED_WEBHOOK,
    "receive_stripe_webhook_refunds": SIGNED_WEBHOOK,
}


@dataclass
class World:
    live: Live
    pledge_id: str
    batch_id: str
    refund_id: str


def _path(template: str, world: World) -> str:
    values = {
        "campaign_id": world.live.id,
        "tier_id": world.live.tier["id"],
        "version": str(world.live.tier["terms"]["version"]),
        "pledge_id": world.pledge_id,
        "item": "identity_verified",
        "batch_id": world.batch_id,
        "refund_id": world.refund_id,
    }
    for name, value in values.items():
        template = template.replace("{" + name + "}", value)
    return template


def _body(op_id: str, world: World) -> dict[str, Any]:
    """A valid body where a route validates the body before it checks ownership (otherwise a 422 would hide
    the ownership decision)."""
    terms = world.live.tier["terms"]
    bodies: dict[str, dict[str, Any]] = {
        "create_tier": {
            "title": "T",
            "description": "d",
            "price_amount": 100,
            "items": [{"name": "x", "quantity": 1}],
            "estimated_delivery": "2027-01",
            "shipping": [],
        },
        "create_pledge": {
            "campaign_id": world.live.id,
            "tier_id": world.live.tier["id"],
            "tier_version": terms["version"],
            "amount": terms["price_amount"],
            "payment_method": "pm_card_visa",
        },
        "accept_new_terms": {"version": terms["version"]},
        "update_pledge_payment_method": {"payment_method": "pm_card_visa"},
        "create_single_refund": {"pledge_id": world.pledge_id, "reason": "matrix", "amount": 1},
    }
    return bodies.get(op_id, {})


def _observe(gateway: httpx.Client, world: World, method: str, path: str, op_id: str, caller: str) -> int:
    headers = dict(CALLERS[caller]) if caller != "creator" else dict(world.live.creator)
    headers["Idempotency-Key"] = uuid.uuid4().hex
    headers["If-Match"] = '"0"'
    # Only the status is read: a progress stream may stay open.
    with gateway.stream(method.upper(), _path(path, world), headers=headers, json=_body(op_id, world)) as response:
        if response.status_code >= 500:
            response.read()
        assert response.status_code < 500, f"{method.upper()} {path} as {caller}: {response.text[:300]}"
        return response.status_code


@pytest.fixture
def world(gateway: httpx.Client) -> World:
    live = launch_campaign(gateway, funding_model="flexible")
    pledged = ok(pledge(gateway, live, "matrix-backer"), 201)
    refund = gateway.post(
        "/v1/refunds",
        json={"pledge_id": pledged["id"], "reason": "matrix", "amount": 1},
        headers=CALLERS["operator"] | {"Idempotency-Key": uuid.uuid4().hex},
    )
    assert refund.status_code in (200, 201, 202), refund.text
    operator = CALLERS["operator"] | {"Idempotency-Key": uuid.uuid4().hex}
    batch = ok(
        gateway.post("/v1/refund-batches", json={"campaign_id": live.id, "reason": "matrix check"}, headers=operator),
        201,
    )
    return World(live, pledged["id"], batch["id"], refund.json()["id"])


def test_every_route_has_an_authorization_rule_and_keeps_it(gateway: httpx.Client, stack: Stack, world: World) -> None:
    document = gateway.get("/openapi.json").json()
    observed: dict[str, dict[str, int]] = {}
    wrong: list[str] = []
    missing: list[str] = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            op_id = operation["operationId"]
            observed[op_id] = {c: _observe(gateway, world, method, path, op_id, c) for c in CALLERS}
            expected = MATRIX.get(op_id)
            if expected is None:
                missing.append(f"{op_id} ({method.upper()} {path}): {observed[op_id]}")
                continue
            for caller, status in observed[op_id].items():
                outcome = D if status in DENIED else A
                if outcome != expected[caller]:
                    wrong.append(f"{op_id} as {caller}: expected {expected[caller]}, got {status}")
    if os.environ.get("CROWDFUND_PRINT_MATRIX"):
        for op_id, statuses in observed.items():
            print(op_id, statuses)
    assert not missing, "routes without an authorization rule:\n" + "\n".join(missing)
    assert not wrong, "authorization differs from the rules:\n" + "\n".join(wrong)
