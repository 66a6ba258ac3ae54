"""Throughput of the refund pipeline against the local Stripe server (real processes on loopback).

    python -m services.refunds.bench                       # 3,000 refunds unlimited, then 1,500 at 100/s
    python -m services.refunds.bench --count 5000 --limit 100 --database-url postgresql+asyncpg://...

Starts the local Stripe server, a contract-faithful fake pledges service (in this process) and the refunds
service as its own process (workers on), charges real PaymentIntents, and runs one batch per phase:

1. **capacity**: the Stripe server's rate limiter off and ours off - the pipeline's own rate;
2. **limited**: the Stripe server limiting at ``--limit`` per second and our fleet limit at the same figure -
   the share of the limit achieved, and how many 429s the Stripe server had to send (should be 0).

The rate is measured from the items' own timestamps (first claim to last outcome), and checked against the
Stripe server's record: exactly one refund per PaymentIntent.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from services.refunds.tests.fakes import FakePledges, LoopbackServer
from services.refunds.tests.support import (
    RefundsProcess,
    create_and_start_batch,
    seed_charged_pledges,
    stripe_refunds_by_intent,
    wait_for_batch,
)
from shared.migrations import upgrade
from shared.testing import auth_headers
from stripe_local.testing import StripeLocalProcess

SERVICE_DIR = Path(__file__).resolve().parent
OPERATOR = auth_headers("operator-bench", "operator")


async def run_phase(
    name: str,
    *,
    stripe: StripeLocalProcess,
    fake: FakePledges,
    refunds: RefundsProcess,
    count: int,
    stripe_limit: float,
) -> dict[str, Any]:
    campaign_id = uuid.uuid4()
    pledges = await seed_charged_pledges(fake, stripe, campaign_id, [1000] * count)
    stripe.local("POST", "rate_limit", json={"limit_per_second": stripe_limit})
    rejected_before = stripe.local("GET", "rate_limit")["rejected"]
    async with httpx.AsyncClient(base_url=refunds.url, timeout=60) as client:
        started = time.monotonic()
        batch_id = await create_and_start_batch(client, campaign_id, OPERATOR)
        await wait_for_batch(client, batch_id, OPERATOR, timeout=max(120.0, 4 * count / max(stripe_limit, 50)))
        wall = time.monotonic() - started
        report = (await client.get(f"/v1/refund-batches/{batch_id}/report?format=json", headers=OPERATOR)).json()
    rejected = stripe.local("GET", "rate_limit")["rejected"] - rejected_before
    stripe.local("POST", "rate_limit", json={"limit_per_second": 0})
    first = min(datetime.fromisoformat(i["first_attempted_at"]) for i in report["items"])
    last = max(datetime.fromisoformat(i["finished_at"]) for i in report["items"])
    rate = count / max((last - first).total_seconds(), 1e-6)
    made = await stripe_refunds_by_intent(stripe)
    exactly_once = all(len(made.get(p.stripe_payment_intent_id or "", [])) == 1 for p in pledges)
    succeeded = sum(1 for i in report["items"] if i["status"] == "succeeded")
    return {
        "phase": name,
        "count": count,
        "succeeded": succeeded,
        "rate_per_second": round(rate, 1),
        "wall_seconds": round(wall, 1),
        "stripe_429s": rejected,
        "exactly_once": exactly_once,
        "limit": stripe_limit or None,
    }


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    workdir = Path(tempfile.mkdtemp(prefix="refunds-bench-"))
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'refunds.sqlite3'}"
    upgrade(SERVICE_DIR, database_url)
    fake = FakePledges()
    pledges_server = LoopbackServer(fake.app).start()
    results = []
    with StripeLocalProcess(db_path=workdir / "stripe.sqlite3") as stripe:
        common = {
            "REFUNDS_DATABASE_URL": database_url,
            "REFUNDS_ENVIRONMENT": "test",
            "REFUNDS_LOG_LEVEL": "WARNING",
            "REFUNDS_PLEDGES_URL": pledges_server.url,
            "REFUNDS_STRIPE_API_BASE": stripe.url,
            "REFUNDS_STRIPE_MAX_CONCURRENCY": str(args.concurrency),
            "REFUNDS_WORKER_POLL_SECONDS": "0.05",
        }
        phases = [("capacity", args.count, 0.0), ("limited", args.limited_count, args.limit)]
        for name, count, limit in phases:
            if count <= 0:
                continue
            env = {**common, "REFUNDS_STRIPE_RATE_LIMIT_PER_SECOND": str(limit)}
            refunds = RefundsProcess(env, str(workdir / f"refunds-{name}.log")).start()
            try:
                result = await run_phase(
                    name, stripe=stripe, fake=fake, refunds=refunds, count=count, stripe_limit=limit
                )
            finally:
                refunds.stop()
            if limit:
                result["share_of_limit"] = round(result["rate_per_second"] / limit, 3)
            results.append(result)
            print(result, flush=True)
    pledges_server.stop()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m services.refunds.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=int, default=3000, help="refunds in the unlimited (capacity) phase")
    parser.add_argument("--limited-count", type=int, default=1500, help="refunds in the rate-limited phase")
    parser.add_argument("--limit", type=float, default=100.0, help="requests/s for the limited phase")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent Stripe calls per replica")
    parser.add_argument("--database-url", help="the refunds database (default: a fresh SQLite file)")
    args = parser.parse_args(argv)
    results = asyncio.run(main_async(args))
    print()
    for r in results:
        line = f"{r['phase']:<9} {r['count']:>6} refunds  {r['rate_per_second']:>7.1f}/s  exactly once: {r['exactly_once']}"
        if r.get("limit"):
            line += (
                f"  limit {r['limit']:.0f}/s -> {100 * r['share_of_limit']:.1f}% of it, Stripe 429s: {r['stripe_429s']}"
            )
        print(line)


if __name__ == "__main__":
    main()
