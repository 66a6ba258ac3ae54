"""Contract-faithful fakes of the internal routes this service consumes, for its own tests.

``FakePledges`` implements exactly the four pledges routes the refunds service consumes (in memory, service
token required, strict: in a bulk report of refund outcomes, a refund beyond what was charged is refused
``refund_exceeds_charged`` and one of an unknown pledge ``pledge_not_found``, per record; a body that does not
validate is a 422; canceling a charged pledge is a 409 ``already_charged``; an Idempotency-Key reused with
another body is a 422). ``FakeCampaigns``
answers the campaign snapshot with its creator. Both run on a real loopback port (uvicorn in a thread), so
the refunds service reaches them over HTTP exactly as it reaches the real services.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson
import uvicorn
from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shared.auth import AuthConfig, TokenVerifier, require_service
from shared.errors import install_error_handlers, problem_response
from shared.settings import DEV_ISSUER, DEV_JWT_SECRET, DEV_SERVICE_SECRET
from stripe_local.testing import free_port

REFUNDED_STATUSES = ("pending", "succeeded")
RANK = {"pending": 0, "succeeded": 1, "failed": 2, "canceled": 2}


class RefundOutcome(BaseModel):
    pledge_id: uuid.UUID
    refund_id: uuid.UUID
    stripe_refund_id: str | None = Field(default=None, max_length=255)
    amount: int = Field(gt=0)
    currency: str = Field(min_length=3, max_length=3)
    status: Literal["pending", "succeeded", "failed", "canceled"]
    failure_reason: str | None = Field(default=None, max_length=200)
    batch_id: uuid.UUID | None = None


class RefundOutcomeBatch(BaseModel):
    records: list[RefundOutcome] = Field(min_length=1, max_length=500)


@dataclass
class FakePledge:
    pledge_id: uuid.UUID
    campaign_id: uuid.UUID
    backer_id: str
    currency: str
    total_amount: int
    charged_amount: int
    stripe_payment_intent_id: str | None
    status: str = "active"
    funding_model: str = "all_or_nothing"
    tier_id: uuid.UUID | None = None
    disputed: bool = False
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def charged_intent(self) -> str:
        """The PaymentIntent that charged the pledge (what Stripe's refunds point at); only a charged pledge has one."""
        assert self.stripe_payment_intent_id is not None, f"pledge {self.pledge_id} was never charged"
        return self.stripe_payment_intent_id

    @property
    def refunded_amount(self) -> int:
        return sum(r["amount"] for r in self.refunds.values() if r["status"] in REFUNDED_STATUSES)

    def view(self) -> dict[str, Any]:
        return {
            "pledge_id": str(self.pledge_id),
            "campaign_id": str(self.campaign_id),
            "backer_id": self.backer_id,
            "tier_id": str(self.tier_id) if self.tier_id else None,
            "status": self.status,
            "funding_model": self.funding_model,
            "currency": self.currency,
            "total_amount": self.total_amount,
            "charged_amount": self.charged_amount,
            "refunded_amount": self.refunded_amount,
            "refundable_amount": self.charged_amount - self.refunded_amount,
            "stripe_payment_intent_id": self.stripe_payment_intent_id,
            "disputed": self.disputed,
            "created_at": self.created_at.isoformat(),
        }


class FakePledges:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pledges: dict[uuid.UUID, FakePledge] = {}
        self.keys: dict[str, tuple[bytes, int, bytes]] = {}
        self.refund_calls: list[dict[str, Any]] = []  # every record reported, in order
        self.report_requests = 0  # calls of the bulk route it answered (not the injected 503s)
        self.unreadable_refund_ids: set[str] = set()  # a call holding one of these is a 422 as a whole
        self.cancel_calls: list[uuid.UUID] = []
        self.fail_next = 0  # answer this many requests with 503 first
        self.refuse_refund_records = False  # answer every refund record with 503 (pledges lagging behind)
        self.app = self._build()

    def reset(self) -> None:
        with self.lock:
            self.pledges.clear()
            self.keys.clear()
            self.refund_calls.clear()
            self.report_requests = 0
            self.unreadable_refund_ids.clear()
            self.cancel_calls.clear()
            self.fail_next = 0
            self.refuse_refund_records = False

    def add(self, **values: Any) -> FakePledge:
        values.setdefault("pledge_id", uuid.uuid4())
        values.setdefault("backer_id", f"backer-{uuid.uuid4().hex[:8]}")
        values.setdefault("currency", "USD")
        values.setdefault("total_amount", values.get("charged_amount") or 5000)
        values.setdefault("stripe_payment_intent_id", None)
        pledge = FakePledge(**values)
        with self.lock:
            # Strictly increasing creation times: the list order is (created_at, id) as in the contract.
            if self.pledges and "created_at" not in values:
                last = max(p.created_at for p in self.pledges.values())
                pledge.created_at = max(pledge.created_at, last + timedelta(microseconds=1))
            self.pledges[pledge.pledge_id] = pledge
        return pledge

    def _record(self, body: dict[str, Any]) -> dict[str, Any]:
        """One record of a bulk report, applied as pledges applies it (upsert by refund id, a status never goes
        back, never beyond what was charged)."""
        answer = {"refund_id": body["refund_id"], "pledge_id": body["pledge_id"]}
        pledge = self.pledges.get(uuid.UUID(body["pledge_id"]))
        if pledge is None:
            return answer | {"result": "refused", "code": "pledge_not_found", "detail": "No such pledge."}
        self.refund_calls.append({**body, "at": time.time()})
        previous = pledge.refunds.get(body["refund_id"])
        if previous is not None and RANK[body["status"]] < RANK[previous["status"]]:
            return answer | {"result": "recorded"}
        pledge.refunds[body["refund_id"]] = {**body}
        if pledge.refunded_amount > pledge.charged_amount:
            if previous is None:
                del pledge.refunds[body["refund_id"]]
            else:
                pledge.refunds[body["refund_id"]] = previous
            return answer | {"result": "refused", "code": "refund_exceeds_charged", "detail": "Beyond charged."}
        refunded = pledge.refunded_amount
        if refunded >= pledge.charged_amount > 0:
            pledge.status = "refunded"
        elif refunded > 0:
            pledge.status = "partially_refunded"
        elif pledge.status in ("refunded", "partially_refunded"):
            pledge.status = "active"
        return answer | {"result": "recorded"}

    def _build(self) -> FastAPI:
        app = FastAPI()
        app.state.token_verifier = TokenVerifier(
            AuthConfig(issuer=DEV_ISSUER, hs256_secret=DEV_JWT_SECRET, service_secret=DEV_SERVICE_SECRET)
        )
        install_error_handlers(app)

        @app.middleware("http")
        async def faults(request: Request, call_next: Any) -> Any:
            with self.lock:
                fail = self.fail_next > 0
                if fail:
                    self.fail_next -= 1
                if self.refuse_refund_records and request.url.path == "/internal/refund-outcomes":
                    fail = True
            if fail:
                return problem_response(503, "service_unavailable", detail="injected")
            return await call_next(request)

        def not_found(pledge_id: uuid.UUID) -> Any:
            return problem_response(404, "pledge_not_found", detail=f"No pledge {pledge_id}.")

        @app.get("/internal/campaigns/{campaign_id}/pledges", dependencies=[Depends(require_service)])
        async def list_pledges(
            campaign_id: uuid.UUID,
            limit: int = Query(default=100, ge=1, le=500),
            cursor: str | None = None,
            tier_id: uuid.UUID | None = None,
            status: str | None = None,
            created_from: datetime | None = None,
            created_to: datetime | None = None,
        ) -> Any:
            with self.lock:
                rows = sorted(
                    (p for p in self.pledges.values() if p.campaign_id == campaign_id),
                    key=lambda p: (p.created_at, str(p.pledge_id)),
                )
                rows = [
                    p
                    for p in rows
                    if (tier_id is None or p.tier_id == tier_id)
                    and (status is None or p.status == status)
                    and (created_from is None or p.created_at >= created_from)
                    and (created_to is None or p.created_at < created_to)
                ]
                start = int(base64.urlsafe_b64decode(cursor).decode()) if cursor else 0
                page = rows[start : start + limit]
                more = start + limit < len(rows)
                return {
                    "items": [p.view() for p in page],
                    "next_cursor": base64.urlsafe_b64encode(str(start + limit).encode()).decode() if more else None,
                }

        @app.get("/internal/pledges/{pledge_id}", dependencies=[Depends(require_service)])
        async def get_pledge(pledge_id: uuid.UUID) -> Any:
            with self.lock:
                pledge = self.pledges.get(pledge_id)
                return not_found(pledge_id) if pledge is None else pledge.view()

        def replay(key: str | None, body: bytes) -> Any:
            if key is None:
                return problem_response(400, "idempotency_key_required")
            saved = self.keys.get(key)
            if saved is None:
                return None
            if saved[0] != body:
                return problem_response(422, "idempotency_key_reused")
            return JSONResponse(orjson.loads(saved[2]), status_code=saved[1], headers={"Idempotent-Replayed": "true"})

        def remember(key: str, body: bytes, response: Any) -> Any:
            self.keys[key] = (body, response.status_code, bytes(response.body))
            return response

        @app.post("/internal/refund-outcomes", dependencies=[Depends(require_service)])
        async def record_refund_outcomes(batch: RefundOutcomeBatch) -> Any:
            with self.lock:
                self.report_requests += 1
                unreadable = [r.refund_id for r in batch.records if str(r.refund_id) in self.unreadable_refund_ids]
                if unreadable:
                    return problem_response(422, "validation_error", detail=f"Cannot read {unreadable}.")
                return {"results": [self._record(r.model_dump(mode="json")) for r in batch.records]}

        @app.post("/internal/pledges/{pledge_id}/cancel", dependencies=[Depends(require_service)])
        async def cancel_pledge(pledge_id: uuid.UUID, request: Request) -> Any:
            raw = await request.body()
            key = request.headers.get("idempotency-key")
            with self.lock:
                replayed = replay(key, raw)
                if replayed is not None:
                    return replayed
                assert key is not None
                pledge = self.pledges.get(pledge_id)
                if pledge is None:
                    return not_found(pledge_id)
                self.cancel_calls.append(pledge_id)
                if pledge.charged_amount > 0:
                    return remember(key, raw, problem_response(409, "already_charged", detail="Refund it instead."))
                pledge.status = "canceled"
                return remember(key, raw, JSONResponse(pledge.view()))

        return app


class FakeCampaigns:
    def __init__(self) -> None:
        self.creators: dict[uuid.UUID, str] = {}
        app = FastAPI()
        app.state.token_verifier = TokenVerifier(
            AuthConfig(issuer=DEV_ISSUER, hs256_secret=DEV_JWT_SECRET, service_secret=DEV_SERVICE_SECRET)
        )
        install_error_handlers(app)

        @app.get("/internal/campaigns/{campaign_id}", dependencies=[Depends(require_service)])
        async def get_campaign_snapshot(campaign_id: uuid.UUID) -> Any:
            creator = self.creators.get(campaign_id)
            if creator is None:
                return problem_response(404, "campaign_not_found")
            return {"id": str(campaign_id), "creator_id": creator, "status": "succeeded", "currency": "USD"}

        self.app = app


class LoopbackServer:
    """An ASGI app served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any, *, port: int | None = None, lifespan: Literal["auto", "on", "off"] = "off") -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan, access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("loopback server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
