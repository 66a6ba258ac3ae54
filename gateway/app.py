"""The API gateway: the only public entry point. Authenticates, rate-limits and routes ``/v1/...``; serves
the merged OpenAPI document, the docs and an aggregated health check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
import httpx
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import Settings
from gateway.openapi import API_VERSION, OpenAPICache
from gateway.proxy import Proxy
from gateway.ratelimit import ClientRateLimiter
from shared.app import FASTAPI_TELEMETRY_OFF, long_lived_heap_frozen
from shared.auth import AuthConfig, TokenVerifier
from shared.context import RequestContextMiddleware
from shared.errors import install_error_handlers
from shared.http import http_transport
from shared.logging import configure_logging

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"


def create_app(settings: Settings | None = None) -> ASGIApp:
    settings = settings or Settings()
    auth = settings.auth_config()
    # The gateway accepts user tokens only: a service token presented from outside is refused.
    verifier = TokenVerifier(
        AuthConfig(issuer=auth.issuer, audience=auth.audience, hs256_secret=auth.hs256_secret, jwks_url=auth.jwks_url)
    )
    limiter = (
        ClientRateLimiter(settings.rate_limit, settings.rate_limit_storage_uri) if settings.rate_limit_enabled else None
    )
    proxy = Proxy(settings, verifier, limiter)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, json=settings.log_json, component="gateway")
        await proxy.start()
        async with httpx.AsyncClient(timeout=settings.health_timeout_seconds, transport=http_transport()) as client:
            app.state.http = client
            app.state.openapi_cache = OpenAPICache(
                settings.service_urls(), client, settings.openapi_cache_seconds, API_VERSION
            )
            try:
                with long_lived_heap_frozen():
                    yield
            finally:
                await proxy.aclose()

    api = FastAPI(
        title="Crowdfund API gateway",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    api.state.settings = settings
    install_error_handlers(api)

    @api.get("/openapi.json", include_in_schema=False)
    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(await request.app.state.openapi_cache.document())

    # Swagger UI's assets are served by the gateway itself (bundled by fastapi-offline), never from a CDN:
    # the docs work on a machine or a cluster with no way out to the internet.
    api.mount("/docs/assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Crowdfund API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )

    @api.get("/healthz", include_in_schema=False)
    async def healthz(request: Request) -> JSONResponse:
        client: httpx.AsyncClient = request.app.state.http

        async def probe(name: str, url: str) -> tuple[str, dict[str, Any]]:
            try:
                response = await client.get(f"{url}/readyz")
                if response.status_code == 200:
                    return name, {"status": "ready"}
                return name, {"status": "not_ready", "http_status": response.status_code}
            except httpx.HTTPError as exc:
                return name, {"status": "unavailable", "error": type(exc).__name__}

        results = dict(await asyncio.gather(*(probe(n, u) for n, u in settings.service_urls().items())))
        ready = all(r["status"] == "ready" for r in results.values())
        body = {"status": "ok" if ready else "degraded", "gateway": {"status": "ready"}, "services": results}
        return JSONResponse(body, status_code=200 if ready else 503)

    app: ASGIApp = _Dispatch(api, proxy)
    if settings.cors_allow_origins:
        app = CORSMiddleware(
            app,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-Match", "X-Request-ID"],
            expose_headers=["ETag", "Location", "Retry-After", "X-Request-ID", "Idempotent-Replayed"],
            max_age=600,
        )
    return RequestContextMiddleware(app)


class _Dispatch:
    """``/v1/...`` goes straight to the proxy (no router on the hot path); the rest to the FastAPI app."""

    def __init__(self, api: FastAPI, proxy: Proxy) -> None:
        self.api = api
        self.proxy = proxy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            await self.proxy(scope, receive, send)
        else:
            await self.api(scope, receive, send)
