"""The load generator, run in its own process so it never shares an event loop (or a core's attention) with
the system under test. Prints one JSON document on stdout.

    python -m bench.loadgen rush --gateway URL --campaign ID --tier ID --version N --amount A \
        --backers 5000 --concurrency 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from typing import Any

import aiohttp
import uvloop

from shared.testing import user_token
from tools.stack import ROOT


async def rush(args: argparse.Namespace) -> dict[str, Any]:
    tokens = [user_token(f"bench-backer-{i}", "backer") for i in range(args.backers)]
    body = {
        "campaign_id": args.campaign,
        "tier_id": args.tier,
        "tier_version": args.version,
        "amount": args.amount,
        "payment_method": "pm_card_visa",
    }
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    accepted: list[dict[str, Any]] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(args.backers):
        queue.put_nowait(i)
    timeout = aiohttp.ClientTimeout(total=60)

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.concurrency), timeout=timeout
    ) as session:

        async def backer_loop() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                headers = {"authorization": f"Bearer {tokens[i]}", "idempotency-key": uuid.uuid4().hex}
                started = time.perf_counter()
                try:
                    async with session.post(f"{args.gateway}/v1/pledges", json=body, headers=headers) as response:
                        payload = await response.json(content_type=None)
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    outcomes[f"transport:{type(exc).__name__}"] += 1
                    latencies.append(time.perf_counter() - started)
                    continue
                latencies.append(time.perf_counter() - started)
                if status == 201:
                    outcomes["accepted"] += 1
                    accepted.append({"id": payload["id"], "amount": payload["amount"]["total_amount"]})
                else:
                    outcomes[f"{status}:{payload.get('code', '?')}" if isinstance(payload, dict) else str(status)] += 1

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(backer_loop() for _ in range(args.concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "elapsed_seconds": elapsed,
        "cpu_seconds": cpu,  # this process's own CPU over the rush (user + system)
        "requests": len(latencies),
        "latencies_ms": sorted(round(x * 1000, 3) for x in latencies),
        "outcomes": dict(outcomes),
        "accepted": accepted,
    }


def run_rush(
    gateway: str, live: Any, amount: int, backers: int, concurrency: int, *, timeout: float = 1800
) -> dict[str, Any]:
    """Run ``rush`` in a process of its own against ``live``'s tier (a launched campaign); its JSON result."""
    command = [
        sys.executable, "-m", "bench.loadgen", "rush",
        "--gateway", gateway,
        "--campaign", live.id, "--tier", live.tier["id"], "--version", str(live.tier["terms"]["version"]),
        "--amount", str(amount), "--backers", str(backers), "--concurrency", str(concurrency),
    ]  # fmt: skip
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"load generator failed: {completed.stderr[-2000:]}")
    return json.loads(completed.stdout)  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    sub = parser.add_subparsers(dest="scenario", required=True)
    r = sub.add_parser("rush")
    r.add_argument("--gateway", required=True)
    r.add_argument("--campaign", required=True)
    r.add_argument("--tier", required=True)
    r.add_argument("--version", type=int, required=True)
    r.add_argument("--amount", type=int, required=True)
    r.add_argument("--backers", type=int, default=5000)
    r.add_argument("--concurrency", type=int, default=100)
    args = parser.parse_args(argv)
    result = uvloop.run(rush(args))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
