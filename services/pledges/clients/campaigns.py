"""The campaigns service, as this service uses it: its internal reservation API (service token) and the
tier versions a pledge's snapshot is taken from.

Contract (owned by campaigns): the pledge id is the idempotency key of a reservation; ``reserve`` checks the
campaign is live, the terms version is current, the tier quantity, the per-backer limit and the cap, all in
one transaction; ``confirm`` and ``release`` are idempotent. Tier versions are immutable, so they are cached
for good; the campaign facts a pledge needs (funding model, currency, creator) briefly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from services.pledges.clients.http import InternalClient, InternalUnavailable
from shared.auth import ServiceTokenSource

_T = TypeVar("_T")

TIER_VERSION_CACHE_SIZE = 10_000
CAMPAIGN_CACHE_SIZE = 10_000
FULL_CACHE_SIZE = 10_000
# Refusals that say "no capacity left", remembered briefly (see CampaignsClient.remembered_refusal).
CAP_REACHED = "cap_reached"
TIER_SOLD_OUT = "tier_sold_out"


class CampaignsUnavailable(Exception):
    """The campaigns service could not be reached or answered 5xx; the call may be repeated."""


class CampaignRefusal(Exception):
    """A business refusal from campaigns (4xx problem): cap reached, sold out, terms changed..."""

    def __init__(self, status: int, code: str, detail: str | None, extra: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


@dataclass(frozen=True, slots=True)
class CampaignFacts:
    id: uuid.UUID
    creator_id: str
    status: str
    funding_model: str
    currency: str
    accepts_pledges: bool
    deadline_at: datetime | None


@dataclass(frozen=True, slots=True)
class Reservation:
    pledge_id: uuid.UUID
    status: str  # pending | confirmed | released | expired
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class TierVersion:
    tier_id: uuid.UUID
    campaign_id: uuid.UUID
    version: int
    content_hash: str
    price_amount: int
    currency: str
    content: dict[str, Any]  # title, description, price_amount, currency, items, estimated_delivery, shipping

    def shipping_amount(self, region: str | None) -> int | None:
        """Shipping to ``region``; None when the tier ships but not there (or no region was given)."""
        rates = {rate["region"]: int(rate["shipping_amount"]) for rate in self.content.get("shipping") or []}
        if not rates:
            return 0
        return rates.get(region) if region else None


@dataclass(frozen=True, slots=True)
class CampaignTotals:
    committed_amount: int
    reserved_amount: int
    confirmed_sum_amount: int
    confirmed_count: int
    pending_sum_amount: int
    pending_count: int
    consistent: bool


def _refusal(status: int, body: Any) -> CampaignRefusal:
    if not isinstance(body, dict):
        body = {}
    known = {"type", "title", "status", "detail", "code", "instance"}
    extra = {k: v for k, v in body.items() if k not in known and k != "errors"}
    return CampaignRefusal(status, str(body.get("code") or "campaign_refused"), body.get("detail"), extra)


class CampaignsClient:
    def __init__(
        self,
        base_url: str,
        token_source: ServiceTokenSource,
        *,
        timeout_seconds: float,
        cache_seconds: float,
        full_seconds: float = 0.0,
    ):
        self._http = InternalClient("campaigns", base_url, token_source, timeout_seconds=timeout_seconds)
        self._cache_seconds = cache_seconds
        self._full_seconds = full_seconds
        self._campaigns: OrderedDict[uuid.UUID, tuple[float, CampaignFacts]] = OrderedDict()
        self._versions: OrderedDict[tuple[uuid.UUID, int], TierVersion] = OrderedDict()
        # (campaign, None) -> (until, smallest amount refused for the cap, refusal); (campaign, tier) -> sold out.
        self._full: OrderedDict[tuple[uuid.UUID, uuid.UUID | None], tuple[float, int, CampaignRefusal]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Future[Any]] = {}

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a 2xx answer; a 4xx problem is a :class:`CampaignRefusal`."""
        try:
            status, body = await self._http.request(method, path, **kwargs)
        except InternalUnavailable as exc:
            raise CampaignsUnavailable(str(exc)) from exc
        if status >= 500:
            raise CampaignsUnavailable(f"campaigns answered {status}")
        if status >= 400:
            raise _refusal(status, body)
        return body

    # -- reads --------------------------------------------------------------------------------------------

    async def _once(self, key: Hashable, fetch: Callable[[], Awaitable[_T]]) -> _T:
        """One request for concurrent misses of the same key: the first caller's, which the others await. At a
        launch the first hundred pledges all missed the cache together, and asked campaigns a hundred times
        for the same facts and terms (those pledges were the rush's slowest: ~1.9 s against ~0.9 s after).
        Shielded: a caller that gives up does not cancel the request for the others."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)  # type: ignore[no-any-return]

    async def campaign(self, campaign_id: uuid.UUID, *, fresh: bool = False) -> CampaignFacts:
        cached = self._campaigns.get(campaign_id)
        if cached is not None and not fresh and cached[0] > time.monotonic():
            return cached[1]
        if fresh:
            return await self._fetch_campaign(campaign_id)
        return await self._once(("campaign", campaign_id), lambda: self._fetch_campaign(campaign_id))

    async def _fetch_campaign(self, campaign_id: uuid.UUID) -> CampaignFacts:
        now = time.monotonic()
        body = await self._request("GET", f"/internal/campaigns/{campaign_id}")
        facts = CampaignFacts(
            id=uuid.UUID(body["id"]),
            creator_id=body["creator_id"],
            status=body["status"],
            funding_model=body["funding_model"],
            currency=body["currency"],
            accepts_pledges=bool(body["accepts_pledges"]),
            deadline_at=datetime.fromisoformat(body["deadline_at"]) if body.get("deadline_at") else None,
        )
        self._campaigns[campaign_id] = (now + self._cache_seconds, facts)
        self._campaigns.move_to_end(campaign_id)
        while len(self._campaigns) > CAMPAIGN_CACHE_SIZE:
            self._campaigns.popitem(last=False)
        return facts

    async def tier_version(self, campaign_id: uuid.UUID, tier_id: uuid.UUID, version: int) -> TierVersion:
        """One immutable version of a tier's terms (cached: versions never change)."""
        cached = self._versions.get((tier_id, version))
        if cached is not None and cached.campaign_id == campaign_id:
            return cached
        return await self._once(
            ("tier_version", campaign_id, tier_id, version),
            lambda: self._fetch_tier_version(campaign_id, tier_id, version),
        )

    async def _fetch_tier_version(self, campaign_id: uuid.UUID, tier_id: uuid.UUID, version: int) -> TierVersion:
        body = await self._request("GET", f"/v1/campaigns/{campaign_id}/tiers/{tier_id}/versions/{version}")
        content = {
            key: body[key]
            for key in ("title", "description", "price_amount", "currency", "items", "estimated_delivery", "shipping")
        }
        result = TierVersion(
            tier_id=uuid.UUID(body["tier_id"]),
            campaign_id=uuid.UUID(body["campaign_id"]),
            version=int(body["version"]),
            content_hash=body["content_hash"],
            price_amount=int(body["price_amount"]),
            currency=body["currency"],
            content=content,
        )
        self._versions[(tier_id, version)] = result
        while len(self._versions) > TIER_VERSION_CACHE_SIZE:
            self._versions.popitem(last=False)
        return result

    async def totals(self, campaign_id: uuid.UUID) -> CampaignTotals:
        body = await self._request("GET", f"/internal/campaigns/{campaign_id}/totals")
        return CampaignTotals(
            committed_amount=body["committed_amount"],
            reserved_amount=body["reserved_amount"],
            confirmed_sum_amount=body["confirmed_sum_amount"],
            confirmed_count=body["confirmed_count"],
            pending_sum_amount=body["pending_sum_amount"],
            pending_count=body["pending_count"],
            consistent=body["consistent"],
        )

    # -- capacity refusals, remembered for a moment -----------------------------------------------------------

    def remembered_refusal(self, campaign_id: uuid.UUID, tier_id: uuid.UUID, amount: int) -> CampaignRefusal | None:
        """The refusal campaigns gave less than ``full_seconds`` ago to a pledge this one cannot do better than:
        the cap reached for an amount no larger, or the tier sold out. A launch rush that sells out sends
        thousands more pledges; each would be written, reserved (refused) and written again. Capacity comes
        back only through a release (a decline, a cancel, an expiry), so for this moment the answer is the
        same; campaigns stays the judge of every pledge that could fit."""
        if self._full_seconds <= 0:
            return None
        now = time.monotonic()
        for key, applies in (((campaign_id, tier_id), True), ((campaign_id, None), None)):
            entry = self._full.get(key)
            if entry is None:
                continue
            until, smallest, refusal = entry
            if until <= now:
                del self._full[key]
            elif applies or amount >= smallest:
                return refusal
        return None

    def _remember(self, campaign_id: uuid.UUID, tier_id: uuid.UUID, amount: int, refusal: CampaignRefusal) -> None:
        if self._full_seconds <= 0 or refusal.code not in (CAP_REACHED, TIER_SOLD_OUT):
            return
        key = (campaign_id, tier_id if refusal.code == TIER_SOLD_OUT else None)
        until = time.monotonic() + self._full_seconds
        previous = self._full.get(key)
        if refusal.code == CAP_REACHED and previous is not None and previous[0] > time.monotonic():
            amount = min(amount, previous[1])
        self._full[key] = (until, amount, refusal)
        self._full.move_to_end(key)
        while len(self._full) > FULL_CACHE_SIZE:
            self._full.popitem(last=False)

    # -- reservations (the pledge id is the idempotency key) -------------------------------------------------

    async def reserve(
        self,
        *,
        pledge_id: uuid.UUID,
        campaign_id: uuid.UUID,
        tier_id: uuid.UUID,
        tier_version: int,
        backer_id: str,
        amount: int,
        currency: str,
        shipping_region: str | None,
        confirmed: bool = False,
    ) -> Reservation:
        """Hold capacity for the pledge: pending (``confirm`` follows the payment), or, with ``confirmed``
        (the card is already saved), held and committed at once."""
        try:
            body = await self._request(
                "POST",
                f"/internal/campaigns/{campaign_id}/reservations",
                json={
                    "pledge_id": str(pledge_id),
                    "tier_id": str(tier_id),
                    "tier_version": tier_version,
                    "backer_id": backer_id,
                    "amount": amount,
                    "currency": currency,
                    "shipping_region": shipping_region,
                    "confirmed": confirmed,
                },
                idempotency_key=f"pledge:{pledge_id}:reserve",
            )
        except CampaignRefusal as refusal:
            self._remember(campaign_id, tier_id, amount, refusal)
            raise
        return _reservation(body)

    async def confirm(self, campaign_id: uuid.UUID, pledge_id: uuid.UUID) -> Reservation:
        body = await self._request(
            "POST",
            f"/internal/campaigns/{campaign_id}/reservations/{pledge_id}/confirm",
            idempotency_key=f"pledge:{pledge_id}:confirm",
        )
        return _reservation(body)

    async def release(self, campaign_id: uuid.UUID, pledge_id: uuid.UUID, reason: str) -> None:
        """Give the pledge's capacity back. No reservation (never made) counts as released."""
        try:
            await self._request(
                "POST",
                f"/internal/campaigns/{campaign_id}/reservations/{pledge_id}/release",
                json={"reason": reason[:200]},
                idempotency_key=f"pledge:{pledge_id}:release",
            )
        except CampaignRefusal as refusal:
            if refusal.status != 404:
                raise


def _reservation(body: dict[str, Any]) -> Reservation:
    return Reservation(
        pledge_id=uuid.UUID(body["pledge_id"]),
        status=body["status"],
        expires_at=datetime.fromisoformat(body["expires_at"]) if body.get("expires_at") else None,
    )
