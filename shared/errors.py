"""RFC 9457 problem details: one exception base, one renderer, handlers for everything FastAPI raises.

Every error a client sees is ``application/problem+json`` with ``type``, ``title``, ``status``, ``detail``
and a stable machine ``code``. Nothing internal (stack traces, SQL, submitted secrets) ever reaches a body.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from shared.db import is_transient_db_error
from shared.jsonutil import dumps

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:crowdfund:problem:"

log = structlog.get_logger("shared.errors")


class Problem(BaseModel):
    """An RFC 9457 problem document, as every error of this API is rendered."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": True})

    type: str = Field(description="A URI naming the problem type; stable per `code`.")
    title: str = Field(description="Short human summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str | None = Field(default=None, description="Human explanation of this occurrence.")
    code: str = Field(description="Stable machine-readable code, e.g. `cap_reached`.")
    instance: str | None = Field(default=None, description="The request path that failed.")


class ProblemError(Exception):
    """Base of every error that becomes a problem response. Subclasses set status, code and title."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.instance_code = code or self.code
        self.instance_status = status or self.status
        self.instance_title = title or self.title
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class BadRequest(ProblemError):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(ProblemError):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": "Bearer"})
        super().__init__(detail, **kwargs)


class Forbidden(ProblemError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFound(ProblemError):
    status, code, title = 404, "not_found", "Not found"


class Conflict(ProblemError):
    status, code, title = 409, "conflict", "Conflict"


class PreconditionFailed(ProblemError):
    status, code, title = 412, "precondition_failed", "Precondition failed"


class PreconditionRequired(ProblemError):
    status, code, title = 428, "precondition_required", "Precondition required"


class UnprocessableContent(ProblemError):
    status, code, title = 422, "validation_error", "Invalid request"


class ServiceUnavailable(ProblemError):
    status, code, title = 503, "service_unavailable", "Service unavailable"


class BadGateway(ProblemError):
    status, code, title = 502, "bad_gateway", "Bad gateway"


class GatewayTimeout(ProblemError):
    status, code, title = 504, "gateway_timeout", "Gateway timeout"


def problem_body(
    status: int,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update({k: v for k, v in extra.items() if k not in body})
    return body


def problem_response(
    status: int,
    code: str,
    title: str | None = None,
    detail: str | None = None,
    *,
    instance: str | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body = problem_body(status, code, title, detail, instance, extra)
    return Response(dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=dict(headers or {}))


def render_problem_error(exc: ProblemError, instance: str | None = None) -> Response:
    return problem_response(
        exc.instance_status,
        exc.instance_code,
        exc.instance_title,
        exc.detail,
        instance=instance,
        extra=exc.extra,
        headers=exc.headers,
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Pydantic puts the submitted value in "input" and sometimes in "ctx": both can hold a secret or card
    # data, so only the location, message and type are returned.
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


async def _handle_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ProblemError)
    return render_problem_error(exc, instance=request.url.path)


async def _handle_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
    return problem_response(
        422, "validation_error", "Invalid request", detail, instance=request.url.path, extra={"errors": errors}
    )


async def _handle_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(exc.status_code, code, None, detail, instance=request.url.path, headers=exc.headers or {})


def _database_unavailable(request: Request, exc: Exception) -> Response:
    # The database is out of reach or overloaded: nothing was committed (the unit of work rolls back), and a
    # retry (with the same Idempotency-Key for a write) is safe. A 503, never a 500.
    log.warning("request.database_unavailable", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(
        503,
        "database_unavailable",
        "Service temporarily unavailable",
        "The service cannot reach its database right now; retry shortly.",
        instance=request.url.path,
        headers={"Retry-After": "1"},
    )


async def _handle_database(request: Request, exc: Exception) -> Response:
    """Database and socket errors, answered inside the app. A handler for ``Exception`` runs in Starlette's
    outermost middleware, which re-raises after answering, and uvicorn then closes the connection: the
    gateway's next request on that kept-alive connection failed (a 502 right after each 503, seen in the
    launch rush). Anything that is not about availability goes on to ``_handle_unexpected``."""
    if is_transient_db_error(exc):
        return _database_unavailable(request, exc)
    raise exc


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    if is_transient_db_error(exc):  # raised outside the routes (a middleware, a dependency's teardown)
        return _database_unavailable(request, exc)
    log.exception("request.unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(
        500, "internal_error", "Internal server error", "An unexpected error occurred.", instance=request.url.path
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _handle_problem)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(sa_exc.SQLAlchemyError, _handle_database)
    app.add_exception_handler(OSError, _handle_database)
    app.add_exception_handler(Exception, _handle_unexpected)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the problems a route can answer."""
    return {
        status: {
            "model": Problem,
            "description": _phrase(status),
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }
