"""Test helpers: real charged PaymentIntents at the local Stripe server, pledges that point at them, polling."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import stripe

from services.refunds.tests.fakes import FakePledge, FakePledges
from shared.testing import auth_headers
from stripe_local.testing import StripeLocalProcess

PAYMENT_METHODS = {
    "visa": "pm_card_visa",
    "pending_refund": "pm_card_pendingRefund",  # 4000000000007726: refund pending -> succeeded
    "refund_fails": "pm_card_refundFail",  # 4000000000005126: refund succeeded -> failed
}


async def charge_payment_intents(
    stripe_url: str, amounts: list[int], *, card: str = "visa", currency: str = "usd", concurrency: int = 24
) -> list[str]:
    """Create and confirm one PaymentIntent per amount (really charged) through the official SDK."""
    connector = aiohttp.TCPConnector(limit=concurrency)
    http_client = stripe.AIOHTTPClient(timeout=aiohttp.ClientTimeout(total=30), connector=connector)
    client = stripe.StripeClient(
        "sk_test_local", base_addresses={"api": stripe_url}, http_client=http_client, max_network_retries=3
    )
    semaphore = asyncio.Semaphore(concurrency)
    ids: list[str] = [""] * len(amounts)

    async def one(index: int, amount: int) -> None:
        async with semaphore:
            intent = await client.v1.payment_intents.create_async(
                params={
                    "amount": amount,
                    "currency": currency,
                    "payment_method": PAYMENT_METHODS[card],
                    "allowed_payment_method_types": ["card"],  # the SDK's API version's name
                    "confirm": True,
                },
                options={"idempotency_key": f"seed:{uuid.uuid4()}"},
            )
            assert intent.status == "succeeded", intent.status
            ids[index] = intent.id

    try:
        await asyncio.gather(*(one(i, a) for i, a in enumerate(amounts)))
    finally:
        await http_client.close_async()
    return ids


async def seed_charged_pledges(
    fake: FakePledges,
    stripe_server: StripeLocalProcess,
    campaign_id: uuid.UUID,
    amounts: list[int],
    *,
    card: str = "visa",
    **values: Any,
) -> list[FakePledge]:
    intents = await charge_payment_intents(stripe_server.url, amounts, card=card)
    return [
        fake.add(
            campaign_id=campaign_id,
            charged_amount=amount,
            total_amount=amount,
            stripe_payment_intent_id=intent,
            **values,
        )
        for amount, intent in zip(amounts, intents, strict=True)
    ]


async def stripe_refunds_by_intent(stripe_server: StripeLocalProcess) -> dict[str, list[dict[str, Any]]]:
    """Every refund the Stripe server ever made, grouped by PaymentIntent (its own test-only record)."""
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.get(f"{stripe_server.url}/_local/refunds")
        response.raise_for_status()
    grouped: dict[str, list[dict[str, Any]]] = {}
    for refund in response.json()["data"]:
        grouped.setdefault(refund["payment_intent"], []).append(refund)
    return grouped


async def eventually(
    probe: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"
) -> Any:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


SECOND_OPERATOR = auth_headers("operator-approver", "operator")


async def create_and_start_batch(
    client: httpx.AsyncClient, campaign_id: uuid.UUID, headers: dict[str, str], **body: Any
) -> str:
    created = await client.post(
        "/v1/refund-batches",
        json={"campaign_id": str(campaign_id), "reason": "Campaign canceled by its creator", **body},
        headers=headers | {"Idempotency-Key": str(uuid.uuid4())},
    )
    assert created.status_code == 201, created.text
    batch_id: str = created.json()["id"]
    # A second operator approves: any batch size passes the two-person rule.
    approved = await client.post(f"/v1/refund-batches/{batch_id}/approve", headers=SECOND_OPERATOR)
    assert approved.status_code == 200, approved.text
    started = await client.post(f"/v1/refund-batches/{batch_id}/start", headers=headers)
    assert started.status_code == 200, started.text
    return batch_id


async def wait_for_batch(
    client: httpx.AsyncClient, batch_id: str, headers: dict[str, str], *, status: str = "completed", timeout: float = 60
) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        response = await client.get(f"/v1/refund-batches/{batch_id}", headers=headers)
        body: dict[str, Any] = response.json()
        return body if response.status_code == 200 and body["status"] == status else None

    return await eventually(reached, timeout=timeout, interval=0.2, what=f"batch {batch_id} {status}")  # type: ignore[no-any-return]


class RefundsProcess:
    """The refunds service as a real process (uvicorn), so that it can be killed with SIGKILL mid-batch."""

    def __init__(self, env: dict[str, str], log_path: str) -> None:
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RefundsProcess:
        from stripe_local.testing import free_port

        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "services.refunds.app:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    "warning",
                ],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"refunds exited with {self.process.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("refunds did not become healthy")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is handed back; leases must expire."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
