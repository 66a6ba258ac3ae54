"""The Search API subset: metadata, status and customer queries, paged with ``next_page``."""

from __future__ import annotations

from .conftest import Api

PAY = {
    "amount": 1000,
    "currency": "usd",
    "confirm": True,
    "payment_method": "pm_card_visa",
    "payment_method_types": ["card"],
}


async def test_search_by_metadata_status_and_customer(api: Api) -> None:
    customer = await api.ok("POST", "/v1/customers", {"email": "s@example.com"})
    wanted = await api.ok(
        "POST", "/v1/payment_intents", {**PAY, "customer": customer["id"], "metadata": {"pledge_id": "p-1"}}
    )
    await api.ok("POST", "/v1/payment_intents", {**PAY, "metadata": {"pledge_id": "p-2"}})
    found = await api.ok("GET", "/v1/payment_intents/search", {"query": "metadata['pledge_id']:'p-1'"})
    assert found["object"] == "search_result"
    assert [p["id"] for p in found["data"]] == [wanted["id"]]
    assert (found["has_more"], found["next_page"], found["url"]) == (False, None, "/v1/payment_intents/search")
    both = await api.ok(
        "GET", "/v1/payment_intents/search", {"query": f"status:'succeeded' AND customer:'{customer['id']}'"}
    )
    assert [p["id"] for p in both["data"]] == [wanted["id"]]
    negated = await api.ok("GET", "/v1/payment_intents/search", {"query": "-metadata['pledge_id']:'p-1'"})
    assert wanted["id"] not in [p["id"] for p in negated["data"]]
    charges = await api.ok("GET", "/v1/charges/search", {"query": f"payment_intent:'{wanted['id']}'"})
    assert [c["id"] for c in charges["data"]] == [wanted["latest_charge"]]
    customers = await api.ok("GET", "/v1/customers/search", {"query": "email:'s@example.com'"})
    assert [c["id"] for c in customers["data"]] == [customer["id"]]


async def test_search_pages_with_next_page(api: Api) -> None:
    ids = [(await api.ok("POST", "/v1/payment_intents", {**PAY, "metadata": {"batch": "b"}}))["id"] for _ in range(3)]
    first = await api.ok("GET", "/v1/payment_intents/search", {"query": "metadata['batch']:'b'", "limit": 2})
    assert first["has_more"] is True
    assert first["next_page"]
    second = await api.ok(
        "GET", "/v1/payment_intents/search", {"query": "metadata['batch']:'b'", "limit": 2, "page": first["next_page"]}
    )
    assert [p["id"] for p in first["data"] + second["data"]] == ids[::-1]


async def test_an_unsupported_query_is_refused(api: Api) -> None:
    response = await api.get("/v1/payment_intents/search", {"query": "amount>100 OR status:'x'"})
    assert (response.status_code, response.json()["error"]["param"]) == (400, "query")
