"""Test-only control and inspection routes under ``/_local/`` - not part of Stripe's API.

They let tests prove "exactly once" (every refund ever made for a PaymentIntent), steer fault
injection and the rate limiter at runtime, run asynchronous transitions and webhook deliveries
now, and play the customer's part in a 3-D Secure challenge. JSON in, JSON out, no auth.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import orjson

from .core import Ctx, public
from .errors import StripeError
from .forms import parse_form
from .http import Receive, Scope, Send, read_body, send_json
from .resources import confirmation, setup_intents

if TYPE_CHECKING:
    from .app import StripeLocalApp

_AUTHENTICATE = re.compile(r"^/_local/(payment_intents|setup_intents)/([^/]+)/authenticate$")
_MAX_ROWS = 10_000


class LocalApi:
    def __init__(self, app: StripeLocalApp) -> None:
        self.app = app

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        query = parse_form(scope.get("query_string", b""))
        raw = await read_body(receive) if method in ("POST", "PUT") else b""
        try:
            body = orjson.loads(raw) if raw.strip() else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            status, payload = await self._dispatch(method, path, query, body)
        except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
            status, payload = 400, {"error": str(exc)}
        except StripeError as error:
            status, payload = error.status, error.to_body(None)
        await send_json(send, status, payload)

    async def _dispatch(self, method: str, path: str, query: dict[str, Any], body: dict[str, Any]) -> tuple[int, Any]:
        app, db = self.app, self.app.db
        route = (method, path)
        if route == ("GET", "/_local/refunds"):
            return 200, self._list("refund", query, ("payment_intent", "charge"))
        if route == ("GET", "/_local/charges"):
            return 200, self._list("charge", query, ("payment_intent", "customer"))
        if route == ("GET", "/_local/payment_intents"):
            return 200, self._list("payment_intent", query, ("customer",))
        if route == ("GET", "/_local/setup_intents"):
            return 200, self._list("setup_intent", query, ("customer",))
        if route == ("GET", "/_local/events"):
            rows = db.page_events(
                types=[query["type"]] if query.get("type") else None,
                prefix=None,
                created=None,
                object_id=query.get("object_id"),
                after_seq=None,
                before_seq=None,
                limit=_MAX_ROWS,
            )
            return 200, {"object": "list", "data": list(reversed(rows))}
        if route == ("GET", "/_local/webhook_deliveries"):
            return 200, {"object": "list", "data": db.deliveries(query.get("event_id"), _MAX_ROWS)}
        if route == ("GET", "/_local/faults"):
            return 200, app.faults.describe()
        if route == ("POST", "/_local/faults"):
            app.faults.configure(body)
            return 200, app.faults.describe()
        if route == ("DELETE", "/_local/faults"):
            app.faults.configure({})
            app.faults.counts.clear()
            return 200, app.faults.describe()
        if route == ("GET", "/_local/rate_limit"):
            return 200, {"limit_per_second": app.limiter.rate, "rejected": app.limiter.rejected}
        if route == ("POST", "/_local/rate_limit"):
            rate = body.get("limit_per_second")
            app.limiter.configure(float(rate or 0))
            return 200, {"limit_per_second": app.limiter.rate, "rejected": app.limiter.rejected}
        if route == ("POST", "/_local/advance"):
            transitions = app.scheduler.run_due(everything=True)
            deliveries = await app.dispatcher.deliver_due(force=True) if body.get("webhooks") else 0
            return 200, {"transitions": transitions, "deliveries": deliveries}
        if route == ("GET", "/_local/stats"):
            return 200, {
                **app.stats,
                "rate_limited_total": app.limiter.rejected,
                "faults": dict(app.faults.counts),
                "fault_config": asdict(app.faults.config),
            }
        found = _AUTHENTICATE.match(path)
        if method == "POST" and found:
            return 200, self._authenticate(found.group(1), found.group(2), body.get("outcome", "succeed"))
        return 404, {"error": f"no such local route: {method} {path}"}

    def _list(self, obj_type: str, query: dict[str, Any], columns: tuple[str, ...]) -> dict[str, Any]:
        """Every object of a type matching the filters, oldest first, deleted or not."""
        conditions: dict[str, str] = {}
        for column in columns:
            if isinstance(query.get(column), str):
                conditions[f"$.{column}"] = query[column]
        if isinstance(query.get("status"), str):
            conditions["$.status"] = query["status"]
        metadata = query.get("metadata")
        if isinstance(metadata, dict):
            for key, value in metadata.items():
                conditions[f'$.metadata."{key}"'] = str(value)
        rows = self.app.db.objects_where_json(obj_type, conditions, _MAX_ROWS)
        return {"object": "list", "data": [public(r) for r in reversed(rows)]}

    def _authenticate(self, kind: str, intent_id: str, outcome: str) -> dict[str, Any]:
        if outcome not in ("succeed", "fail"):
            raise ValueError("outcome must be 'succeed' or 'fail'")
        app = self.app
        uow = app.db.begin()
        ctx = Ctx(app.state, uow, request_id=None, idempotency_key=None)
        obj_type = "payment_intent" if kind == "payment_intents" else "setup_intent"
        intent = ctx.get(intent_id, obj_type)
        if intent is None:
            raise StripeError(404, f"No such {obj_type}: '{intent_id}'", code="resource_missing")
        module = confirmation if obj_type == "payment_intent" else setup_intents
        try:
            result = module.complete_authentication(ctx, intent, outcome == "succeed")
        except StripeError:
            if not ctx.keep_on_error:
                app.db.invalidate_cache()
                raise
            uow.commit()
            app.state.wake_dispatcher()
            raise
        uow.commit()
        app.state.wake_dispatcher()
        return public(result)
