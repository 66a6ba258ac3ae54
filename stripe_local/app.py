"""The ASGI application: authentication, rate limiting, fault injection, idempotency, dispatch.

A /v1 request goes through, in order: API key check, route match, rate limit, fault decision,
idempotency lookup (replay / mismatch / in flight), injected latency, injected 500 or 429,
parameter validation, then the handler and the commit of its unit of work together with the
saved idempotent response, and finally - when a fault says so - a dropped connection.
Validation errors and injected faults are never saved, as Stripe saves only what executed.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import random
import time
from collections import Counter

import orjson

from . import API_VERSION, ids, routes
from .commit import GroupCommitter
from .config import Settings
from .core import AppState, Ctx, ListPage, Obj, check_expand, render
from .db import Database
from .errors import StripeError
from .faults import FaultInjector, RateLimiter
from .forms import parse_form
from .http import JSON, Headers, Receive, Scope, Send, drop_connection, read_body, send_bytes, send_json
from .local_api import LocalApi
from .params import validate
from .resources import webhook_endpoints
from .scheduler import Scheduler
from .webhooks import Dispatcher

logger = logging.getLogger("stripe_local")

_NO_KEY = (
    "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer "
    "auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
    "details, or we can help at https://support.stripe.com/."
)


def _freeze_after_full_collection(phase: str, info: dict[str, int]) -> None:
    """A gc callback: once a full collection has run, freeze what survived it. Nearly all of this server's
    heap is its stored objects (the cache holds up to 100,000), which live until evicted; without this every
    full collection walked all of them again - measured at 150-750 ms each, every ~20 s of a 20,000-refund
    batch, a pause that bunched the requests waiting behind it into one second of this server's clock. A
    frozen object is still freed by reference counting when it is dropped (the cache's JSON dicts hold no
    cycles); the collector only stops re-walking it. The cost: a reference cycle alive at that moment (a
    request in flight) that becomes garbage later stays until ``stop()``, which unfreezes."""
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()


def _rate_limited() -> StripeError:
    return StripeError(
        429,
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
        code="rate_limit",
    )


def _api_error() -> StripeError:
    return StripeError(500, "An unknown error occurred", type="api_error")


class StripeLocalApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.db = Database(settings.db, synchronous=settings.sqlite_synchronous)
        self.state = AppState(settings, self.db, self.rng)
        self.faults = FaultInjector(settings, self.rng)
        self.limiter = RateLimiter(settings.rate_limit)
        self.committer = GroupCommitter(self.db)
        self.dispatcher = Dispatcher(self.state)
        self.scheduler = Scheduler(self.state)
        self.state.wake_dispatcher = self.dispatcher.wake
        self.state.wake_scheduler = self.scheduler.wake
        self.inflight: set[str] = set()
        self.stats: Counter[str] = Counter()
        self.local = LocalApi(self)
        self.started = False
        webhook_endpoints.configure_from_settings(self.state)

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self.started:
            return
        self.db.idempotency_prune(int(time.time()) - self.settings.idempotency_ttl_seconds)
        await self.dispatcher.start()
        await self.scheduler.start()
        gc.callbacks.append(_freeze_after_full_collection)
        gc.freeze()  # what start-up left (modules, routes, the schema) lives as long as the process
        self.started = True

    async def stop(self) -> None:
        if not self.started:
            return
        await self.dispatcher.stop()
        await self.scheduler.stop()
        gc.callbacks.remove(_freeze_after_full_collection)
        gc.unfreeze()
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/v1/"):
                await self._api(scope, receive, send, scope["method"], path)
            elif path == "/healthz":
                await send_json(send, 200, {"status": "ok"})
            elif path.startswith("/_local/"):
                await self.local.handle(scope, receive, send)
            else:
                await self._not_found(send, scope["method"], path)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.start()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                self.db.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _not_found(self, send: Send, method: str, path: str) -> None:
        error = StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )
        await send_json(send, 404, error.to_body(None))

    # -- the API pipeline -----------------------------------------------------------------

    async def _api(self, scope: Scope, receive: Receive, send: Send, method: str, path: str) -> None:
        auth = idem_key = version = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                auth = value.decode("latin-1")
            elif name == b"idempotency-key":
                idem_key = value.decode("utf-8", "replace")
            elif name == b"stripe-version":
                version = value
        body = await read_body(receive) if method == "POST" else b""
        request_id = ids.request_id()
        headers: Headers = [
            JSON,
            (b"request-id", request_id.encode()),
            (b"stripe-version", version or API_VERSION.encode()),
        ]
        if idem_key is None or method != "POST":
            idem_key = None
        else:
            headers.append((b"idempotency-key", idem_key.encode()))
        self.stats["requests"] += 1
        log_url = f"https://dashboard.stripe.com/test/logs/{request_id}?t={int(time.time())}"

        async def fail(error: StripeError) -> None:
            await send_bytes(send, error.status, orjson.dumps(error.to_body(log_url)), headers)

        key_error = self._authenticate(auth)
        if key_error is not None:
            await fail(key_error)
            return
        found = routes.match(method, path)
        if found is None:
            await self._not_found(send, method, path)
            return
        route, path_params = found
        if not self.limiter.allow(route.name):
            self.stats["rate_limited"] += 1
            await fail(_rate_limited())
            return
        fault = self.faults.decide(method, path)
        raw = parse_form(body if method == "POST" else scope.get("query_string", b""))
        params_blob = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS) if idem_key else b""

        claimed = False
        try:
            if idem_key is not None:
                replay = self._idempotent_replay(idem_key, method, path, params_blob)
                if isinstance(replay, StripeError):
                    await fail(replay)
                    return
                if replay is not None:
                    status, saved_body, original_request = replay
                    self.stats["replays"] += 1
                    if fault == "drop":
                        await drop_connection(receive)
                        return
                    await send_bytes(
                        send,
                        status,
                        saved_body,
                        [*headers, (b"idempotent-replayed", b"true"), (b"original-request", original_request)],
                    )
                    return
                self.inflight.add(idem_key)
                claimed = True
            delay = self.faults.latency(method, path)
            if delay:
                await asyncio.sleep(delay)
            if fault == "500":
                await fail(_api_error())
                return
            if fault == "429":
                await fail(_rate_limited())
                return
            try:
                params = validate(route.spec, raw)
                check_expand(route.returns, params.get("expand") or [], is_list=route.is_list)
            except StripeError as error:
                await fail(error)
                return
            status, response = await self._execute(
                route, path_params, params, request_id, idem_key, method, path, params_blob, log_url
            )
        finally:
            if claimed:
                self.inflight.discard(idem_key)  # type: ignore[arg-type]
        if fault == "drop":
            await drop_connection(receive)
            return
        await send_bytes(send, status, response, headers)

    def _authenticate(self, auth: str | None) -> StripeError | None:
        key = None
        if auth:
            scheme, _, credential = auth.partition(" ")
            if scheme.lower() == "bearer":
                key = credential.strip()
            elif scheme.lower() == "basic":
                try:
                    key = base64.b64decode(credential).decode().split(":", 1)[0]
                except ValueError:
                    key = credential
        if not key:
            return StripeError(401, _NO_KEY, log_url=False)
        if not key.startswith(("sk_test_", "rk_test_")):
            masked = key[:8] + "*" * max(0, len(key) - 12) + key[-4:]
            return StripeError(
                401,
                f"Invalid API Key provided: {masked}",
                code="api_key_invalid" if key.startswith(("sk_", "rk_")) else None,
                log_url=False,
            )
        return None

    def _idempotent_replay(
        self, key: str, method: str, path: str, params_blob: bytes
    ) -> tuple[int, bytes, bytes] | StripeError | None:
        if key in self.inflight:
            return StripeError(
                409,
                "There is currently another in-progress request using this Idempotent Key (that probably means you "
                f"submitted twice, and the other request is still going through): {key}. Please try again later.",
                type="idempotency_error",
                code="idempotency_key_in_use",
            )
        row = self.db.idempotency_get(key)
        if row is None or row[6] < time.time() - self.settings.idempotency_ttl_seconds:
            return None
        saved_method, saved_path, saved_params, status, body, request_id, _ = row
        if (saved_method, saved_path) != (method, path):
            return StripeError(
                400,
                (
                    "Keys for idempotent requests can only be used for the same endpoint they were first used for "
                    f"('{saved_method} {saved_path}' vs '{method} {path}'). Try using a key other than '{key}' if you "
                    "meant to execute a different request."
                ),
                type="idempotency_error",
            )
        if bytes(saved_params) != params_blob:
            return StripeError(
                400,
                (
                    "Keys for idempotent requests can only be used with the same parameters they were first used with. "
                    f"Try using a key other than '{key}' if you meant to execute a different request."
                ),
                type="idempotency_error",
            )
        return int(status), bytes(body), str(request_id).encode()

    async def _execute(
        self,
        route: routes.Route,
        path_params: dict[str, str],
        params: Obj,
        request_id: str,
        idem_key: str | None,
        method: str,
        path: str,
        params_blob: bytes,
        log_url: str,
    ) -> tuple[int, bytes]:
        """Run the handler synchronously - nothing else runs meanwhile - and commit its writes and
        the saved idempotent response in one transaction before anything is sent."""
        uow = self.db.begin()
        ctx = Ctx(self.state, uow, request_id=request_id, idempotency_key=idem_key)
        status = 200
        try:
            result = route.handler(ctx, params, **path_params)
            payload = self._render(ctx, result, params.get("expand"))
        except StripeError as error:
            if not ctx.keep_on_error:
                if not uow.empty:
                    self.db.invalidate_cache()  # the handler may have mutated cached objects
                uow = self.db.begin()
            status, payload = error.status, error.to_body(log_url)
        except Exception:
            logger.exception("api.handler.crashed", extra={"route": route.name})
            self.db.invalidate_cache()
            return 500, orjson.dumps(_api_error().to_body(log_url))
        body = orjson.dumps(payload)
        if idem_key is not None:
            uow.save_idempotency(idem_key, method, path, params_blob, status, body, request_id, ctx.now)
        try:
            await self.committer.commit(uow)
        except Exception:
            logger.exception("api.commit.failed", extra={"route": route.name})
            return 500, orjson.dumps(_api_error().to_body(log_url))
        if uow.deliveries:
            self.state.wake_dispatcher()
        if uow.scheduled:
            self.state.wake_scheduler()
        if ctx.endpoints_changed:
            self.state.reload_endpoints()
        return status, body

    def _render(self, ctx: Ctx, result: Obj | ListPage, expand: list[str] | None) -> Obj:
        if isinstance(result, ListPage):
            return result.render(ctx.uow.get, expand)
        out = render(ctx.uow.get, result, expand)
        if ctx.response_extra:
            merged = {**out, **ctx.response_extra}
            out = {"id": merged.pop("id"), "object": merged.pop("object"), **dict(sorted(merged.items()))}
        return out


def create_app(settings: Settings | None = None) -> StripeLocalApp:
    """The ASGI app. Run it with uvicorn (``python -m stripe_local``) or in-process in tests; in-process,
    call ``await app.start()`` / ``await app.stop()`` (or send ASGI lifespan) to run the workers."""
    return StripeLocalApp(settings or Settings.from_env())
