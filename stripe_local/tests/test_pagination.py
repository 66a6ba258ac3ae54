"""List pagination: newest first, ``limit`` 1-100, ``starting_after``/``ending_before``, ``has_more``."""

from __future__ import annotations

from .conftest import Api

EMAIL = "cohort@example.com"


async def _cohort(api: Api, count: int) -> list[str]:
    ids = []
    for i in range(count):
        ids.append((await api.ok("POST", "/v1/customers", {"email": EMAIL, "description": f"c{i}"}))["id"])
    return ids[::-1]  # newest first, as lists answer


async def test_pages_walk_forward_without_gaps_or_repeats(api: Api) -> None:
    expected = await _cohort(api, 7)
    seen, cursor, pages = [], None, []
    while True:
        params = {"email": EMAIL, "limit": 3, **({"starting_after": cursor} if cursor else {})}
        page = await api.ok("GET", "/v1/customers", params)
        pages.append((len(page["data"]), page["has_more"]))
        seen += [c["id"] for c in page["data"]]
        if not page["has_more"]:
            break
        cursor = page["data"][-1]["id"]
    assert seen == expected
    assert pages == [(3, True), (3, True), (1, False)]


async def test_ending_before_steps_back(api: Api) -> None:
    expected = await _cohort(api, 5)
    page = await api.ok("GET", "/v1/customers", {"email": EMAIL, "limit": 2, "ending_before": expected[3]})
    assert [c["id"] for c in page["data"]] == expected[1:3]
    assert page["has_more"] is True


async def test_limit_is_clamped_to_1_through_100(api: Api) -> None:
    await _cohort(api, 3)
    assert len((await api.ok("GET", "/v1/customers", {"limit": 0}))["data"]) == 1
    assert len((await api.ok("GET", "/v1/customers", {"limit": 101}))["data"]) == 3
    default = await api.ok("GET", "/v1/customers")
    assert default["url"] == "/v1/customers"


async def test_bad_pagination_parameters_fail_like_stripe(api: Api) -> None:
    ids = await _cohort(api, 2)
    bad_limit = await api.get("/v1/customers", {"limit": "abc"})
    assert (bad_limit.status_code, bad_limit.json()["error"]["code"]) == (400, "parameter_invalid_integer")
    unknown = await api.get("/v1/customers", {"starting_after": "cus_aaa"})
    assert unknown.status_code == 400
    assert unknown.json()["error"] == {
        "code": "resource_missing",
        "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        "message": "No such customer: 'cus_aaa'",
        "param": "starting_after",
        "request_log_url": unknown.json()["error"]["request_log_url"],
        "type": "invalid_request_error",
    }
    both = await api.get("/v1/customers", {"starting_after": ids[0], "ending_before": ids[1]})
    assert both.json()["error"]["message"] == (
        "Received both starting_after and ending_before parameters. Please pass in only one."
    )


async def test_events_paginate_too(api: Api) -> None:
    await _cohort(api, 4)
    first = await api.ok("GET", "/v1/events", {"limit": 2, "type": "customer.created"})
    second = await api.ok(
        "GET", "/v1/events", {"limit": 2, "type": "customer.created", "starting_after": first["data"][-1]["id"]}
    )
    assert first["has_more"] is True
    assert second["has_more"] is False
    assert len({e["id"] for e in first["data"] + second["data"]}) == 4
