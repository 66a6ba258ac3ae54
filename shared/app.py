"""The FastAPI application every service is built from: same middleware, errors, health routes, lifespan."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from sqlalchemy import text

from shared.auth import TokenVerifier
from shared.context import RequestContextMiddleware
from shared.db import Database
from shared.errors import PROBLEM_MEDIA_TYPE, Problem, ServiceUnavailable, install_error_handlers
from shared.logging import configure_logging
from shared.settings import ServiceSettings

# FastAPI traces and measures each request through OpenTelemetry whenever a provider is configured, and looks
# for one on every request (environment lookups: 2.4% of the campaigns service's CPU in the launch rush).
# This project installs no OpenTelemetry SDK; its trace context is its own (``traceparent`` and the request
# id, carried by ``shared.context`` into every log line and outgoing call). The gateway uses it too.
FASTAPI_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

LifespanHook = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


@contextmanager
def long_lived_heap_frozen() -> Iterator[None]:
    """While the app serves: what start-up built (modules, routes, schemas, pools, compiled statements) is
    moved out of the garbage collector's full passes, which otherwise walk all of it again each time (a pause
    of the whole event loop). Freezing costs nothing (no collection is run for it); reference counting still
    frees anything dropped. Unfrozen at shutdown, so that a process running apps one after another (the
    tests) collects what each left behind."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def operation_id(route: APIRoute) -> str:
    """operationId = the endpoint function's name (``create_campaign``): clean generated method names.
    Uniqueness across all services is checked when the gateway merges the documents."""
    return route.name


def create_service_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    internal_routers: Sequence[APIRouter] = (),
    idempotency_model: Any = None,
    lifespan_hooks: Sequence[LifespanHook] = (),
    version: str = "0.1.0",
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, json=settings.log_json, component=name)
        database = Database(
            settings.database_url,
            pool_size=settings.database_pool_size,
            pool_timeout=settings.database_pool_timeout_seconds,
            pool_pre_ping=settings.database_pool_pre_ping,
            echo=settings.database_echo,
        )
        app.state.db = database
        try:
            async with AsyncExitStack() as stack:
                for hook in lifespan_hooks:
                    await stack.enter_async_context(hook(app))
                with long_lived_heap_frozen():
                    yield
        finally:
            await database.dispose()

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
        separate_input_output_schemas=False,
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.service_name = name
    app.state.token_verifier = TokenVerifier(settings.auth_config())
    app.state.idempotency_model = idempotency_model
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(_health_router())
    for router in routers:
        app.include_router(router)
    for router in internal_routers:
        app.include_router(router, prefix="/internal", tags=["internal"])
    _register_problem_schema(app)
    return app


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> dict[str, str]:
        """Readiness: the database answers."""
        database: Database = request.app.state.db
        try:
            async with database.read_sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:
            raise ServiceUnavailable("The database is not reachable.", code="database_unavailable") from exc
        return {"status": "ready", "database": database.dialect}

    return router


def _register_problem_schema(app: FastAPI) -> None:
    """``Problem`` is a named component in every service, identical everywhere, used or not yet."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        # One canonical Problem schema in every service, so the gateway's merged document has exactly one.
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        # FastAPI documents its own 422 body (HTTPValidationError); ours is a problem document with `errors`.
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                if isinstance(operation, dict) and "422" in operation.get("responses", {}):
                    operation["responses"]["422"] = {
                        "description": "The request is invalid (problem details with `errors`).",
                        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                    }
        for unused in ("HTTPValidationError", "ValidationError"):
            components.pop(unused, None)
        schema["components"].setdefault(
            "securitySchemes", {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
