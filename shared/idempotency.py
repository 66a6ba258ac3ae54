"""Client idempotency for POSTs that create things (``Idempotency-Key`` header).

- same key, same body: the stored response is replayed (with ``Idempotent-Replayed: true``);
- same key, different body: 422 ``idempotency_key_reused``;
- same key while the first request still runs: 409 ``idempotency_request_in_progress``.

The key is claimed in its own short transaction (a unique constraint decides who wins), the work runs in
the request's unit of work, and the response is stored in that same transaction, so a stored response
exists exactly when the work was committed. A claim left by a process that died expires after
``LOCK_SECONDS`` and the next retry takes it over.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast

import orjson
import structlog
from sqlalchemy import JSON, Integer, LargeBinary, String, UniqueConstraint, delete, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column
from starlette.requests import Request
from starlette.responses import Response

from shared.auth import optional_principal
from shared.db import Database, insert_for, utcnow
from shared.errors import BadRequest, Conflict, ProblemError, UnprocessableContent, render_problem_error

LOCK_SECONDS = 60
HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_STORED_HEADERS = ("content-type", "location", "etag")

log = structlog.get_logger("shared.idempotency")

# openapi_extra for a route that requires the header: documented in OpenAPI, enforced by UnitOfWorkRoute.
IDEMPOTENT: dict[str, Any] = {
    "x-idempotent": True,
    "parameters": [
        {
            "name": HEADER,
            "in": "header",
            "required": True,
            "description": "A unique key (e.g. a UUID) per intended operation. Retrying with the same key "
            "and body replays the first response instead of acting twice.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ],
}


class IdempotencyRecordMixin:
    """Columns of a service's ``idempotency_records`` table (each service owns its own)."""

    @declared_attr.directive
    def __tablename__(cls) -> str:
        return "idempotency_records"

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("scope", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    scope: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(255))
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    locked_until: Mapped[datetime | None]
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    response_headers: Mapped[dict[str, str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    try:
        # Key order in a JSON body does not change what was asked for.
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body else b""
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _replay(record: Any) -> Response:
    headers = dict(record.response_headers or {})
    headers[REPLAYED_HEADER] = "true"
    return Response(record.response_body or b"", status_code=record.response_status, headers=headers)


def _stored_headers(response: Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower() in _STORED_HEADERS}


async def _claim(db: Database, model: Any, scope: str, key: str, fp: str) -> Response | None:
    """Claim the key. Returns a response to send instead (a replay) or None when we own the claim."""
    now = utcnow()
    async with db.write_sessions() as session:
        insert = insert_for(session)
        stmt = (
            insert(model)
            .values(
                id=uuid.uuid4(),
                scope=scope,
                key=key,
                request_fingerprint=fp,
                locked_until=now + timedelta(seconds=LOCK_SECONDS),
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["scope", "key"])
        )
        result = cast("CursorResult[Any]", await session.execute(stmt))
        if result.rowcount == 1:
            await session.commit()
            return None
        record = (await session.execute(select(model).where(model.scope == scope, model.key == key))).scalar_one()
        if record.request_fingerprint != fp:
            raise UnprocessableContent(
                "This Idempotency-Key was already used with a different request.",
                code="idempotency_key_reused",
            )
        if record.completed_at is not None:
            return _replay(record)
        if record.locked_until is not None and record.locked_until > now:
            raise Conflict(
                "A request with this Idempotency-Key is still being processed; retry later.",
                code="idempotency_request_in_progress",
                headers={"Retry-After": "1"},
            )
        # The first attempt died without finishing: take its claim over (compare-and-set on the lock).
        taken = cast(
            "CursorResult[Any]",
            await session.execute(
                update(model)
                .where(model.id == record.id, model.locked_until == record.locked_until)
                .values(locked_until=now + timedelta(seconds=LOCK_SECONDS))
            ),
        )
        if taken.rowcount != 1:
            raise Conflict(
                "A request with this Idempotency-Key is being processed.", code="idempotency_request_in_progress"
            )
        await session.commit()
        return None


async def _complete(session: AsyncSession, model: Any, scope: str, key: str, response: Response) -> None:
    await session.execute(
        update(model)
        .where(model.scope == scope, model.key == key)
        .values(
            response_status=response.status_code,
            response_body=bytes(response.body),
            response_headers=_stored_headers(response),
            completed_at=utcnow(),
            locked_until=None,
        )
    )


async def _release(db: Database, model: Any, scope: str, key: str) -> None:
    async with db.write_sessions() as session:
        await session.execute(delete(model).where(model.scope == scope, model.key == key))
        await session.commit()


async def run_idempotent(
    request: Request,
    handler: Callable[[Request], Awaitable[Response]],
    db: Database,
    model: Any,
) -> Response:
    key = request.headers.get(HEADER)
    if not key:
        raise BadRequest(f"The {HEADER} header is required for this request.", code="idempotency_key_required")
    if len(key) > 255:
        raise BadRequest(f"The {HEADER} header is at most 255 characters.", code="idempotency_key_invalid")
    principal = await optional_principal(request)
    scope = principal.subject if principal else "anonymous"
    body = await request.body()
    fp = fingerprint(request.method, request.url.path, request.url.query, body)

    replay = await _claim(db, model, scope, key, fp)
    if replay is not None:
        return replay

    async with db.write_sessions() as session:
        request.state.session = session
        try:
            response = await handler(request)
        except ProblemError as exc:
            await session.rollback()
            response = render_problem_error(exc, instance=request.url.path)
            if exc.instance_status >= 500:
                await _release(db, model, scope, key)
                return response
            # A business refusal (409 cap reached, 402 declined...) is the answer to this key, as at Stripe.
            async with db.write_sessions() as store:
                await _complete(store, model, scope, key, response)
                await store.commit()
            return response
        except BaseException:
            await session.rollback()
            await _release(db, model, scope, key)
            raise
        if response.status_code >= 400:
            await session.rollback()
            await _release(db, model, scope, key)
            return response
        await _complete(session, model, scope, key, response)
        await session.commit()
        return response
