"""Forwarding ``/v1/...`` to the owning service: authenticate, rate-limit, stream the request and the response.

Pure ASGI on a pooled httpx client. Small bodies (the common case) are sent and relayed whole, which is
measurably faster than chunked streaming; bodies without a length or above a threshold are streamed.
"""

from __future__ import annotations

import secrets

import httpx
import structlog
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from gateway.config import Settings
from gateway.ratelimit import ClientRateLimiter
from gateway.routing import resolve
from shared.auth import TokenVerifier, bearer_token
from shared.context import request_id_var, traceparent_var
from shared.errors import ProblemError, problem_response, render_problem_error

log = structlog.get_logger("gateway.proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
# Headers a client may not set on the way in: the gateway writes them itself.
GATEWAY_OWNED = frozenset({"x-request-id", "traceparent", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
BUFFER_LIMIT = 256 * 1024


class Proxy:
    def __init__(self, settings: Settings, verifier: TokenVerifier, limiter: ClientRateLimiter | None) -> None:
        self.settings = settings
        self.verifier = verifier
        self.limiter = limiter
        self.upstreams = settings.service_urls()
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                settings.upstream_timeout_seconds,
                connect=settings.upstream_connect_timeout_seconds,
                pool=settings.upstream_connect_timeout_seconds,
            ),
            limits=httpx.Limits(
                max_connections=settings.upstream_max_connections,
                max_keepalive_connections=settings.upstream_max_connections,
                keepalive_expiry=30,
            ),
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except ProblemError as exc:
            response = render_problem_error(exc, instance=request.url.path)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        match = resolve(request.method, path)
        if match is None:
            return problem_response(404, "not_found", "Not found", f"No public route for {path}.", instance=path)

        token = bearer_token(request)
        subject: str | None = None
        if token is not None:
            principal = await self.verifier.verify(token)  # a bad token is a 401 even on a public route
            subject = principal.subject
        elif not match.public:
            return problem_response(
                401,
                "missing_token",
                "Authentication required",
                "A bearer token is required.",
                instance=path,
                headers={"WWW-Authenticate": "Bearer"},
            )

        if self.limiter is not None:
            client_key = f"sub:{subject}" if subject else f"ip:{request.client.host if request.client else '-'}"
            retry_after = await self.limiter.hit(client_key)
            if retry_after is not None:
                return problem_response(
                    429,
                    "rate_limited",
                    "Too many requests",
                    "Rate limit exceeded; retry later.",
                    instance=path,
                    headers={"Retry-After": str(retry_after)},
                )
        return await self._forward(request, match.service)

    def _upstream_headers(self, request: Request) -> list[tuple[bytes, bytes]]:
        headers = [
            (k, v)
            for k, v in request.headers.raw
            if k.decode("latin-1").lower() not in HOP_BY_HOP and k.decode("latin-1").lower() not in GATEWAY_OWNED
        ]
        request_id = request_id_var.get() or secrets.token_hex(16)
        traceparent = traceparent_var.get() or f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
        forwarded_for = request.headers.get("x-forwarded-for")
        client_ip = request.client.host if request.client else ""
        headers += [
            (b"x-request-id", request_id.encode()),
            (b"traceparent", traceparent.encode()),
            (b"x-forwarded-for", (f"{forwarded_for}, {client_ip}" if forwarded_for else client_ip).encode()),
            (b"x-forwarded-proto", request.url.scheme.encode()),
        ]
        if host := request.headers.get("host"):
            headers.append((b"x-forwarded-host", host.encode("latin-1")))
        return headers

    async def _forward(self, request: Request, service: str) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        url = self.upstreams[service] + raw_path.decode("latin-1")
        if request.url.query:
            url += "?" + request.url.query
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return problem_response(400, "bad_request", None, "Invalid Content-Length.", instance=request.url.path)
            if int(length) > self.settings.max_request_body_bytes:
                return problem_response(413, "payload_too_large", None, "The request body is too large.")
        body = await request.body() if length is not None and int(length) <= BUFFER_LIMIT else request.stream()
        upstream_request = self.client.build_request(
            request.method, url, headers=self._upstream_headers(request), content=body
        )
        try:
            upstream = await self.client.send(upstream_request, stream=True)
        except httpx.TimeoutException as exc:
            log.warning("gateway.upstream_timeout", service=service, error=type(exc).__name__)
            return problem_response(
                504, "upstream_timeout", "Gateway timeout", f"The {service} service did not answer in time."
            )
        except httpx.TransportError as exc:
            log.warning("gateway.upstream_unavailable", service=service, error=type(exc).__name__)
            return problem_response(
                502, "upstream_unavailable", "Bad gateway", f"The {service} service is unavailable."
            )

        response_headers = [
            (k, v) for k, v in upstream.headers.raw if k.decode("latin-1").lower() not in HOP_BY_HOP | {"x-request-id"}
        ]
        upstream_length = upstream.headers.get("content-length")
        if upstream_length is not None and upstream_length.isdigit() and int(upstream_length) <= BUFFER_LIMIT:
            try:
                content = await upstream.aread()
            except httpx.TransportError:
                return problem_response(502, "upstream_unavailable", "Bad gateway", f"The {service} service failed.")
            finally:
                await upstream.aclose()
            response = Response(content, status_code=upstream.status_code)
        else:
            response = StreamingResponse(
                upstream.aiter_raw(), status_code=upstream.status_code, background=BackgroundTask(upstream.aclose)
            )
        response.raw_headers = [(k.lower(), v) for k, v in response_headers]
        return response
