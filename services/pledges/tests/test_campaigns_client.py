"""The campaigns client over real HTTP: concurrent cache misses for the same facts make one request."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from services.pledges.clients.campaigns import CampaignsClient
from shared.auth import ServiceTokenSource
from shared.settings import DEV_SERVICE_SECRET

CAMPAIGN = uuid.uuid4()
TIER = uuid.uuid4()


@pytest.fixture
async def slow_campaigns() -> AsyncIterator[tuple[str, Counter[str]]]:
    """A stand-in for the campaigns service's two reads, each taking 50 ms, counting what it is asked."""
    asked: Counter[str] = Counter()
    facts = {
        "id": str(CAMPAIGN),
        "creator_id": "carol",
        "status": "live",
        "funding_model": "all_or_nothing",
        "currency": "USD",
        "accepts_pledges": True,
        "deadline_at": None,
    }
    version = {
        "tier_id": str(TIER),
        "campaign_id": str(CAMPAIGN),
        "version": 1,
        "content_hash": "h",
        "price_amount": 1000,
        "currency": "USD",
        "title": "T",
        "description": "",
        "items": [],
        "estimated_delivery": None,
        "shipping": [],
    }

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            path = head.split(b" ")[1].decode()
            asked[path] += 1
            await asyncio.sleep(0.05)
            body = json.dumps(version if "/versions/" in path else facts).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", asked
    server.close()


async def test_concurrent_misses_make_one_request_and_all_get_the_answer(
    slow_campaigns: tuple[str, Counter[str]],
) -> None:
    url, asked = slow_campaigns
    client = CampaignsClient(
        url, ServiceTokenSource(DEV_SERVICE_SECRET, "pledges"), timeout_seconds=5, cache_seconds=30
    )
    try:
        facts = await asyncio.gather(*(client.campaign(CAMPAIGN) for _ in range(50)))
        versions = await asyncio.gather(*(client.tier_version(CAMPAIGN, TIER, 1) for _ in range(50)))
        fresh = await client.campaign(CAMPAIGN, fresh=True)  # asked again on purpose: never shared or cached
    finally:
        await client.aclose()

    assert {f.currency for f in facts} == {"USD"}
    assert len(facts) == 50
    assert {v.price_amount for v in versions} == {1000}
    assert len(versions) == 50
    assert fresh.creator_id == "carol"
    assert dict(asked) == {
        f"/internal/campaigns/{CAMPAIGN}": 2,  # one for the fifty, one fresh
        f"/v1/campaigns/{CAMPAIGN}/tiers/{TIER}/versions/1": 1,
    }
