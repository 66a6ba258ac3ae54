from __future__ import annotations

import pytest

from gateway.routing import Match, is_public_operation, resolve


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/campaigns", Match("campaigns", public=True)),
        ("GET", "/v1/campaigns/123/tiers", Match("campaigns", public=True)),
        ("HEAD", "/v1/campaigns/123", Match("campaigns", public=True)),
        ("POST", "/v1/campaigns", Match("campaigns", public=False)),
        ("GET", "/v1/pledges", Match("pledges", public=False)),
        ("GET", "/v1/refund-batches/9/report", Match("refunds", public=False)),
        ("POST", "/v1/webhooks/stripe/pledges", Match("pledges", public=True)),
        ("GET", "/v1/webhooks/stripe/pledges", Match("pledges", public=False)),
        ("POST", "/v1/webhooks/stripe/refunds", Match("refunds", public=True)),
    ],
)
def test_routes_go_to_the_owning_service(method: str, path: str, expected: Match) -> None:
    assert resolve(method, path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/internal/campaigns/1/reservations",
        "/v1/campaignsx",  # a prefix match must end at a segment boundary
        "/v1/campaigns/../../internal/events",
        "/v1/campaigns/./x",
        "/healthz",
        "/v2/campaigns",
    ],
)
def test_paths_outside_the_table_are_not_routed(path: str) -> None:
    assert resolve("GET", path) is None


def test_public_operations_are_judged_on_the_path_template() -> None:
    assert is_public_operation("get", "/v1/campaigns/{campaign_id}")
    assert not is_public_operation("post", "/v1/campaigns/{campaign_id}/submit")
    assert not is_public_operation("get", "/v1/pledges/{pledge_id}")
