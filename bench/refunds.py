"""The batch refund scenario: N charged pledges refunded in one batch through the real stack, once with the
Stripe server's rate limit off (the pipeline's own capacity), once with both the Stripe server and the refunds
service limited to the same rate (the share of the limit achieved, and never above it).

Seeding is not timed: each phase gets its own flexible campaign whose N pledges are made through the gateway by
the load generator (a flexible pledge is charged at once: a confirmed PaymentIntent). Only the batch run is
timed, from `start` to the batch's completion (the service's own `started_at` / `completed_at`), then until
every pledge shows `refunded` at the pledges service. What Stripe saw is read back from the Stripe server:
exactly one refund per PaymentIntent, and how many refunds it created in each 1-second window of its clock
(a refund's `created`), with the 429s its limiter sent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import httpx

from bench.loadgen import run_rush
from shared.auth import ServiceTokenSource
from shared.settings import DEV_SERVICE_SECRET
from shared.testing import auth_headers
from tests.e2e.flows import Live, launch_campaign, ok
from tools.stack import Stack

PRICE = 1_000
IN_PROGRESS = {"reserving", "authorizing", "confirming", "charging", "compensating"}
ALICE = auth_headers("bench-refund-alice", "operator")
BOB = auth_headers("bench-refund-bob", "operator")


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def _service_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ServiceTokenSource(DEV_SERVICE_SECRET, 'bench').token()}"}


def seed_charged_pledges(stack: Stack, gateway: httpx.Client, count: int, concurrency: int) -> dict[str, Any]:
    """A flexible, uncapped campaign with `count` charged pledges, made through the gateway."""
    live = launch_campaign(gateway, funding_model="flexible", cap_amount=None, price_amount=PRICE)
    load = run_rush(stack.config.url("gateway"), live, PRICE, count, concurrency, timeout=3600)
    # A pledge whose answer was lost (a gateway timeout under load) is finished by the pledges sweeper: every
    # pledge charged in the end is refunded, acknowledged or not.
    deadline = time.monotonic() + 300
    while True:
        pledges = pledges_of(stack, live.id)
        if not any(p["status"] in IN_PROGRESS for p in pledges) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    return {
        "live": live,
        "accepted": [p["id"] for p in load["accepted"]],
        "charged": [p["pledge_id"] for p in pledges if p["status"] == "collected"],
        "seconds": round(load["elapsed_seconds"], 1),
        "outcomes": load["outcomes"],
    }


def configure_limits(stack: Stack, limit_per_second: float) -> None:
    """The Stripe server's limiter (at runtime) and the refunds service's fleet limit (its setting: restart)."""
    ok(httpx.post(f"{stack.config.url('stripe')}/_local/rate_limit", json={"limit_per_second": limit_per_second}))
    stack.stop("refunds")
    stack.config.extra_env["REFUNDS_STRIPE_RATE_LIMIT_PER_SECOND"] = str(limit_per_second)
    stack.start("refunds")


def run_batch(gateway: httpx.Client, live: Live, expected: int, timeout: float) -> dict[str, Any]:
    preview = ok(
        gateway.post(
            "/v1/refund-batches",
            json={"campaign_id": live.id, "reason": "Benchmark: project canceled"},
            headers=ALICE | _key(),
            timeout=600,
        ),
        201,
    )
    if preview["item_count"] != expected:
        raise RuntimeError(f"the preview holds {preview['item_count']} items, expected {expected}")
    batch = f"/v1/refund-batches/{preview['id']}"
    ok(gateway.post(f"{batch}/approve", headers=BOB))  # a second operator (required above the threshold)
    started = time.monotonic()
    ok(gateway.post(f"{batch}/start", headers=ALICE))
    deadline = started + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = ok(gateway.get(batch, headers=ALICE))
        if state["status"] not in ("approved", "running"):
            break
        time.sleep(0.5)
    wall = time.monotonic() - started
    if state.get("status") != "completed":
        raise RuntimeError(f"the batch did not complete within {timeout:.0f} s: {state.get('progress')}")
    server_seconds = (
        datetime.fromisoformat(state["completed_at"]) - datetime.fromisoformat(state["started_at"])
    ).total_seconds()
    return {"batch": state, "wall_seconds": wall, "server_seconds": server_seconds, "started": started}


def pledges_of(stack: Stack, campaign_id: str) -> list[dict[str, Any]]:
    """Every pledge of the campaign as the pledges service holds it (its internal contract, 500 a page)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    with httpx.Client(base_url=stack.config.url("pledges"), headers=_service_headers(), timeout=60) as client:
        while True:
            params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
            page = ok(client.get(f"/internal/campaigns/{campaign_id}/pledges", params=params))
            items += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return items


def wait_all_refunded(stack: Stack, campaign_id: str, timeout: float) -> tuple[list[dict[str, Any]], float]:
    started = time.monotonic()
    while True:
        pledges = pledges_of(stack, campaign_id)
        charged = [p for p in pledges if p["charged_amount"] > 0]
        if all(p["status"] == "refunded" for p in charged) or time.monotonic() - started > timeout:
            return pledges, time.monotonic()
        time.sleep(1.0)


async def _refunds_at_stripe(stripe_url: str, intents: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Every refund the Stripe server ever made for each PaymentIntent (its /_local/ inspection route)."""
    found: dict[str, list[dict[str, Any]]] = {}
    queue = list(intents)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def fetch() -> None:
            while queue:
                intent = queue.pop()
                async with session.get(f"{stripe_url}/_local/refunds", params={"payment_intent": intent}) as r:
                    r.raise_for_status()
                    found[intent] = (await r.json())["data"]

        await asyncio.gather(*(fetch() for _ in range(16)))
    return found


def check_exactly_once(stack: Stack, pledges: list[dict[str, Any]], accepted: list[str]) -> dict[str, Any]:
    """Each charged pledge has exactly one refund at the Stripe server, succeeded and of the full amount, and
    shows `refunded` at the pledges service; every acknowledged pledge was among them."""
    charged = [p for p in pledges if p["charged_amount"] > 0]
    intents = {p["pledge_id"]: p["stripe_payment_intent_id"] for p in charged}
    refunds = asyncio.run(_refunds_at_stripe(stack.config.url("stripe"), [i for i in intents.values() if i]))
    per_intent = Counter(len(found) for found in refunds.values())
    wrong = [
        pledge_id
        for pledge_id, intent in intents.items()
        if not intent
        or len(refunds.get(intent, [])) != 1
        or refunds[intent][0]["status"] != "succeeded"
        or refunds[intent][0]["amount"] != PRICE
    ]
    not_refunded = [p["pledge_id"] for p in charged if p["status"] != "refunded" or p["refunded_amount"] != PRICE]
    missing = set(accepted) - set(intents)
    created = Counter(r["created"] for found in refunds.values() for r in found)
    return {
        "acknowledged_pledges": len(accepted),
        "charged_pledges": len(charged),
        "acknowledged_pledges_missing": len(missing),
        "refunds_per_payment_intent": {str(k): v for k, v in sorted(per_intent.items())},
        "pledges_without_exactly_one_succeeded_refund": len(wrong),
        "pledges_not_showing_refunded": len(not_refunded),
        "exactly_once": not wrong and not not_refunded and not missing,
        "created_per_second": created,
    }


def _per_second(created: Counter[int]) -> dict[str, Any]:
    """Refunds the Stripe server created in each second of its clock. The first and last windows are partial."""
    if not created:
        return {"max": 0, "full_windows": 0}
    first, last = min(created), max(created)
    full = [created.get(second, 0) for second in range(first + 1, last)]
    return {
        "max": max(created.values()),
        "max_full_window": max(full, default=0),
        "min_full_window": min(full, default=0),
        "full_windows": len(full),
        "span_seconds": last - first + 1,
        "series": [created.get(second, 0) for second in range(first, last + 1)],
    }


def run_phase(
    stack: Stack,
    gateway: httpx.Client,
    *,
    name: str,
    count: int,
    limit: float,
    concurrency: int,
    sampler: Callable[[Stack], Any],
) -> dict[str, Any]:
    print(f"  {name}: seeding {count} charged pledges through the gateway...", flush=True)
    seeded = seed_charged_pledges(stack, gateway, count, concurrency)
    accepted, charged = seeded["accepted"], seeded["charged"]
    if not charged:
        raise RuntimeError(f"no pledge was charged: {seeded['outcomes']}")
    print(f"  {name}: {len(charged)} charged in {seeded['seconds']} s {seeded['outcomes']}; limit {limit or 'off'}")
    configure_limits(stack, limit)
    rejected_before = ok(httpx.get(f"{stack.config.url('stripe')}/_local/rate_limit"))["rejected"]
    timeout = max(600.0, 3 * len(charged) / (limit or 100))
    with sampler(stack) as usage:
        run = run_batch(gateway, seeded["live"], len(charged), timeout)
    pledges, all_refunded_at = wait_all_refunded(stack, seeded["live"].id, timeout=300)
    rejected = ok(httpx.get(f"{stack.config.url('stripe')}/_local/rate_limit"))["rejected"] - rejected_before
    check = check_exactly_once(stack, pledges, accepted)
    window = _per_second(check.pop("created_per_second"))
    items = len(charged)
    rate = items / run["server_seconds"]
    result: dict[str, Any] = {
        "pledges": items,
        "seed_seconds": seeded["seconds"],
        "seed_pledges_per_second": round(len(charged) / seeded["seconds"], 1),
        "seed_outcomes": seeded["outcomes"],
        "stripe_limit_per_second": limit or None,
        "refunds_service_limit_per_second": limit or None,
        "batch_seconds": round(run["server_seconds"], 2),
        "batch_wall_seconds_seen_by_client": round(run["wall_seconds"], 2),
        "refunds_per_second": round(rate, 1),
        "all_pledges_refunded_after_seconds": round(all_refunded_at - run["started"], 2),
        "stripe_per_second": window,
        "stripe_429s": rejected,
        "cpu_percent_of_one_core_during_batch": usage.cpu_percent,
        "peak_rss_mib_during_batch": usage.peak_mib,
        **check,
    }
    if limit:
        result["share_of_limit"] = round(rate / limit, 3)
        result["targets"] = {
            ">=95%_of_limit": rate >= 0.95 * limit,
            "never_above_limit_per_1s_window": window["max"] <= limit,
            "no_429_from_stripe": rejected == 0,
            "exactly_once": check["exactly_once"],
        }
    else:
        result["targets"] = {"refunds_per_second>=300": rate >= 300, "exactly_once": check["exactly_once"]}
    return result


def scenario_refunds(
    stack: Stack, pledges: int, limit: float, concurrency: int, sampler: Callable[[Stack], Any]
) -> dict[str, Any]:
    """`sampler(stack)`: a context manager measuring each process's CPU and memory (bench.run.MemorySampler)."""
    gateway = httpx.Client(base_url=stack.config.url("gateway"), timeout=60)
    stripe_limit = ok(httpx.get(f"{stack.config.url('stripe')}/_local/rate_limit"))["limit_per_second"]
    refunds_env = {k: v for k, v in stack.config.extra_env.items() if k.startswith("REFUNDS_")}
    try:
        unlimited = run_phase(
            stack, gateway, name="unlimited", count=pledges, limit=0, concurrency=concurrency, sampler=sampler
        )
        limited = run_phase(
            stack, gateway, name="limited", count=pledges, limit=limit, concurrency=concurrency, sampler=sampler
        )
    finally:
        gateway.close()
        ok(httpx.post(f"{stack.config.url('stripe')}/_local/rate_limit", json={"limit_per_second": stripe_limit}))
    return {
        "pledges_per_batch": pledges,
        "refunds_service_settings": refunds_env or "defaults (services/refunds/config.py)",
        "unlimited": unlimited,
        "limited": limited,
    }
