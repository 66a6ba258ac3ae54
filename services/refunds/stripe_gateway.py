"""The one place this service talks to Stripe: refunds, created and listed, typed.

Built on ``stripe.StripeClient`` and its ``*_async`` methods. Retries are ours (tenacity), not the SDK's
(``max_network_retries=0``), so that every attempt - first or retried - waits for a slot of the fleet-wide
rate limit and holds one of this replica's concurrency permits. A retry reuses the same idempotency key.

The calls, their waits for a slot and the limiter's own database rows run on the sender loop, a thread of
their own (``execution/sender.py``), so that a busy main loop does not make the replica give up its slots.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import stripe
import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential_jitter

from services.refunds.config import Settings
from services.refunds.execution.rate_limit import STRIPE_LIMIT, FleetRateLimiter
from services.refunds.execution.sender import SenderLoop
from shared.db import Database

log = structlog.get_logger("refunds.stripe")

T = TypeVar("T")

# Refusals that mean "this charge has no (more) money to refund": checked against the PaymentIntent's refunds
# before being counted either way - the refund may be ours, sent by an earlier attempt.
ALREADY_REFUNDED_CODES = frozenset({"charge_already_refunded"})


@dataclass(frozen=True, slots=True)
class StripeRefund:
    id: str
    status: str
    amount: int
    currency: str
    payment_intent: str | None
    failure_reason: str | None
    metadata: dict[str, str] = field(default_factory=dict)


class RefundRefused(Exception):
    """Stripe refused the request for good (400/402/404): retrying the same request cannot succeed."""

    def __init__(self, code: str | None, message: str, http_status: int | None, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.param = param

    @property
    def looks_already_refunded(self) -> bool:
        return self.code in ALREADY_REFUNDED_CODES or (
            self.param == "amount" and "greater than unrefunded amount" in self.message
        )


class CallWithdrawn(Exception):
    """The call was no longer wanted when its rate-limited turn came (its batch was paused or canceled)."""


class StripeUnavailable(Exception):
    """Stripe kept failing transiently (429, 5xx, timeouts, connection errors) through every retry."""


# The SDK wraps errors raised while sending; errors while reading the body of a response reach us unwrapped.
NETWORK_ERRORS = (asyncio.TimeoutError, aiohttp.ClientError, ConnectionError)


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, stripe.IdempotencyError):
        return False  # same key, different parameters: a bug, never fixed by retrying
    if isinstance(exc, stripe.InvalidRequestError | stripe.CardError):
        return False
    # RateLimitError, APIConnectionError (timeouts, dropped connections), APIError (5xx and 409 "idempotency key
    # in use" while the first request is still running), AuthenticationError/PermissionError (configuration being
    # fixed: items wait rather than fail).
    return isinstance(exc, (stripe.StripeError, *NETWORK_ERRORS))


def _refund(resource: Any) -> StripeRefund:
    obj = resource.to_dict() if hasattr(resource, "to_dict") else dict(resource)
    metadata = obj.get("metadata") or {}
    return StripeRefund(
        id=obj["id"],
        status=obj["status"],
        amount=int(obj["amount"]),
        currency=str(obj["currency"]).upper(),
        payment_intent=obj.get("payment_intent"),
        failure_reason=obj.get("failure_reason"),
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
    )


class StripeRefunds:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sender = SenderLoop()
        self.calls = 0
        # Created on the sender loop, used only there.
        self.limiter: FleetRateLimiter | None = None
        self._limiter_db: Database | None = None
        self._permits: asyncio.Semaphore | None = None
        self._http: stripe.AIOHTTPClient | None = None
        self._client: stripe.StripeClient | None = None

    async def open(self) -> None:
        self.sender.start()
        await self.sender.run(self._open())

    async def _open(self) -> None:
        settings = self.settings
        # Its own pool of one (one reservation at a time): asyncpg connections belong to the loop that opened them.
        self._limiter_db = Database(settings.database_url, pool_size=1)
        self.limiter = FleetRateLimiter(
            self._limiter_db,
            name=STRIPE_LIMIT,
            rate_per_second=settings.stripe_rate_limit_per_second,
            horizon_seconds=settings.stripe_rate_limit_horizon_seconds,
        )
        await self.limiter.setup()
        self._permits = asyncio.Semaphore(settings.stripe_max_concurrency)
        # aiohttp rather than stripe.HTTPXClient: measured on this machine, httpx 0.28's own pool collapses under
        # concurrency (~210 req/s at 32 concurrent vs ~2,300+ on aiohttp).
        connector = aiohttp.TCPConnector(limit=settings.stripe_max_concurrency, keepalive_timeout=30)
        self._http = stripe.AIOHTTPClient(
            timeout=aiohttp.ClientTimeout(total=settings.stripe_timeout_seconds, connect=5),
            connector=connector,
        )
        base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
        assert settings.stripe_api_key is not None
        self._client = stripe.StripeClient(
            settings.stripe_api_key.get_secret_value(),
            base_addresses=base,  # type: ignore[arg-type]
            http_client=self._http,
            max_network_retries=0,
        )

    async def aclose(self) -> None:
        try:
            await self.sender.run(self._close())
        finally:
            await self.sender.stop()

    async def _close(self) -> None:
        if self._http is not None:
            await self._http.close_async()
        if self._limiter_db is not None:
            await self._limiter_db.dispose()

    @property
    def client(self) -> stripe.StripeClient:
        assert self._client is not None, "StripeRefunds.open() was not called"
        return self._client

    async def _call(
        self, operation: str, call: Callable[[], Awaitable[T]], still_wanted: Callable[[], bool] | None = None
    ) -> T:
        """The call under the fleet rate limit, retried while transient, on the sender loop. Raises
        ``CallWithdrawn`` (nothing sent) when ``still_wanted`` says, once the limit grants the call, that it is no
        longer wanted."""
        return await self.sender.run(self._call_on_sender(operation, call, still_wanted))

    async def _call_on_sender(
        self, operation: str, call: Callable[[], Awaitable[T]], still_wanted: Callable[[], bool] | None
    ) -> T:
        limiter, permits = self.limiter, self._permits
        assert limiter is not None, "StripeRefunds.open() was not called"
        assert permits is not None
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.settings.stripe_attempts_per_claim)
                | stop_after_delay(self.settings.worker_lease_seconds / 3),
                wait=wait_exponential_jitter(multiplier=0.1, max=3.0, jitter=0.1),
                retry=retry_if_exception(_transient),
                reraise=True,
            ):
                with attempt:
                    async with permits:
                        await limiter.acquire()
                        if still_wanted is not None and not still_wanted():
                            raise CallWithdrawn()
                        self.calls += 1
                        return await call()
        except stripe.StripeError as exc:
            if _transient(exc):
                log.warning("refund.stripe.unavailable", operation=operation, error=type(exc).__name__)
                raise StripeUnavailable(f"{type(exc).__name__}: {exc.user_message or exc}"[:300]) from exc
            error = exc.error
            raise RefundRefused(
                getattr(error, "code", None) or exc.code,
                str(getattr(error, "message", None) or exc.user_message or exc)[:500],
                exc.http_status,
                getattr(error, "param", None),
            ) from exc
        except NETWORK_ERRORS as exc:
            log.warning("refund.stripe.unavailable", operation=operation, error=type(exc).__name__)
            raise StripeUnavailable(type(exc).__name__) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_refund(
        self,
        *,
        payment_intent: str,
        amount: int,
        reason: str,
        idempotency_key: str,
        metadata: dict[str, str],
        still_wanted: Callable[[], bool] | None = None,
    ) -> StripeRefund:
        params: dict[str, Any] = {
            "payment_intent": payment_intent,
            "amount": amount,
            "reason": reason,
            "metadata": metadata,
        }
        refund = await self._call(
            "refunds.create",
            lambda: self.client.v1.refunds.create_async(
                params=params,  # type: ignore[arg-type]
                options={"idempotency_key": idempotency_key},
            ),
            still_wanted,
        )
        return _refund(refund)

    async def list_refunds(self, payment_intent: str) -> list[StripeRefund]:
        """Every refund of the PaymentIntent (all pages; each page is one rate-limited call)."""
        refunds: list[StripeRefund] = []
        starting_after: str | None = None
        while True:
            params: dict[str, Any] = {"payment_intent": payment_intent, "limit": 100}
            if starting_after:
                params["starting_after"] = starting_after
            page = await self._call(
                "refunds.list",
                lambda params=params: self.client.v1.refunds.list_async(params=params),  # type: ignore[misc]
            )
            batch = [_refund(r) for r in page.data]
            refunds.extend(batch)
            if not page.has_more or not batch:
                return refunds
            starting_after = batch[-1].id

    async def find_refund(self, payment_intent: str, item_id: str) -> StripeRefund | None:
        """Our refund for this item, if any call of ours ever created it (matched on our metadata)."""
        for refund in await self.list_refunds(payment_intent):
            if refund.metadata.get("refund_item_id") == item_id:
                return refund
        return None

    async def retrieve_refund_object(self, refund_id: str) -> dict[str, Any]:
        """The refund as Stripe's JSON object (what a webhook event carries)."""
        refund = await self._call("refunds.retrieve", lambda: self.client.v1.refunds.retrieve_async(refund_id))
        return refund.to_dict()  # type: ignore[no-any-return]
