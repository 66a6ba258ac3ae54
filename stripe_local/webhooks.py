"""Webhook delivery from the durable queue (``webhook_deliveries`` rows), signed like Stripe.

Each row is attempted until it gets a 2xx, with exponential backoff between attempts and a
timeout on every call; a crash leaves rows pending, so delivery is at least once. Optional
duplicates and reordering imitate what Stripe documents it may do.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any

import httpx

from .core import AppState
from .worker import BackgroundWorker

logger = logging.getLogger("stripe_local.webhooks")


def signature(payload: bytes, secret: str, timestamp: int) -> str:
    """HMAC-SHA256 of ``"{t}.{payload}"`` keyed with the whole ``whsec_...`` secret, as Stripe signs."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    return f"t={timestamp},v1={signature(payload, secret, timestamp)}"


class Dispatcher(BackgroundWorker):
    name = "webhooks"

    def __init__(self, state: AppState) -> None:
        super().__init__()
        self.state = state
        self._lock = asyncio.Lock()
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.state.settings.webhook_timeout_seconds)
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def tick(self) -> None:
        await self.deliver_due()

    def idle_timeout(self) -> float:
        next_at = self.state.db.next_delivery_at()
        return 1.0 if next_at is None else min(max(next_at - time.time(), 0.005), 1.0)

    async def deliver_due(self, *, force: bool = False) -> int:
        """Attempt every due delivery once; ``force`` makes backed-off ones due now."""
        async with self._lock:
            db = self.state.db
            if force:
                db.force_deliveries_due(time.time())
            rows = db.due_deliveries(time.time(), newest_first=self.state.settings.webhook_reorder)
            if not rows:
                return 0
            by_endpoint: dict[str, list[tuple[Any, ...]]] = {}
            for row in rows:
                by_endpoint.setdefault(row[2], []).append(row)
            await asyncio.gather(*(self._deliver_sequentially(batch) for batch in by_endpoint.values()))
            return len(rows)

    async def _deliver_sequentially(self, rows: list[tuple[Any, ...]]) -> None:
        for row in rows:
            await self._deliver(*row)

    async def _deliver(self, delivery_id: int, event_id: str, endpoint_id: str, attempts: int) -> None:
        db, settings = self.state.db, self.state.settings
        endpoint = db.get(endpoint_id)
        payload = db.event_payload(event_id)
        now = time.time()
        if endpoint is None or endpoint["_local"].get("deleted") or payload is None:
            db.record_delivery(
                delivery_id,
                status="skipped",
                attempts=attempts,
                next_at=now,
                last_status=None,
                last_error="endpoint deleted",
                delivered_at=None,
            )
            return
        timestamp = int(now)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": signature_header(payload, endpoint["_local"]["secret"], timestamp),
        }
        status: int | None = None
        error: str | None = None
        assert self._client is not None
        try:
            response = await self._client.post(endpoint["url"], content=payload, headers=headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        attempts += 1
        if status is not None and 200 <= status < 300:
            db.record_delivery(
                delivery_id,
                status="delivered",
                attempts=attempts,
                next_at=now,
                last_status=status,
                last_error=None,
                delivered_at=time.time(),
            )
            db.set_event_pending_webhooks(event_id, -1)
            return
        if attempts >= settings.webhook_max_attempts:
            logger.warning("webhook.delivery.failed", extra={"event_id": event_id, "endpoint": endpoint_id})
            db.record_delivery(
                delivery_id,
                status="failed",
                attempts=attempts,
                next_at=now,
                last_status=status,
                last_error=error,
                delivered_at=None,
            )
            return
        backoff = min(settings.webhook_retry_base_seconds * 2 ** (attempts - 1), settings.webhook_retry_max_seconds)
        db.record_delivery(
            delivery_id,
            status="pending",
            attempts=attempts,
            next_at=time.time() + backoff,
            last_status=status,
            last_error=error,
            delivered_at=None,
        )
