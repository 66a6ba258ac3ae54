"""Per-request context (request id, W3C traceparent) carried in contextvars and echoed on responses."""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

access_log = structlog.get_logger("http.access")
QUIET_PATHS = frozenset({"/healthz", "/readyz"})  # probes every few seconds: not worth a log line each


def valid_request_id(value: str | None) -> str:
    """Accept a caller's id only if it is short and plain (it ends up in logs); otherwise make one."""
    if value and _REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


def valid_traceparent(value: str | None) -> str | None:
    return value if value and _TRACEPARENT.match(value) else None


class RequestContextMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: it buffers and costs throughput): request id, trace, access log."""

    def __init__(self, app: ASGIApp, *, access_log_enabled: bool = True) -> None:
        self.app = app
        self.access_log_enabled = access_log_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        request_id = valid_request_id(headers.get(b"x-request-id", b"").decode("latin-1") or None)
        traceparent = valid_traceparent(headers.get(b"traceparent", b"").decode("latin-1") or None)
        rid_token = request_id_var.set(request_id)
        tp_token = traceparent_var.set(traceparent)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if traceparent:
            structlog.contextvars.bind_contextvars(trace_id=traceparent[3:35])
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if self.access_log_enabled and scope["path"] not in QUIET_PATHS:
                access_log.info(
                    "http.request",
                    method=scope["method"],
                    path=scope["path"],
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id", "trace_id")
            request_id_var.reset(rid_token)
            traceparent_var.reset(tp_token)
