"""One unit of work per request, committed before the response is sent.

A route wrapper rather than a ``yield`` dependency: the teardown of a yield dependency may run after the
response has gone out, so a failed commit could follow a 2xx. Here the commit happens first and a failed
commit is an error response.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from shared.db import Database
from shared.idempotency import run_idempotent

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class UnitOfWorkRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        idempotent = bool(self.openapi_extra and self.openapi_extra.get("x-idempotent"))
        read_only = (self.methods or set()) <= READ_METHODS

        async def unit_of_work_handler(request: Request) -> Response:
            db: Database = request.app.state.db
            if idempotent:
                return await run_idempotent(request, handler, db, request.app.state.idempotency_model)
            sessions = db.read_sessions if read_only else db.write_sessions
            async with sessions() as session:
                request.state.session = session
                response = await handler(request)
                if response.status_code < 400:
                    await session.commit()
                else:
                    await session.rollback()
                return response

        return unit_of_work_handler


async def get_session(request: Request) -> AsyncSession:
    """The request's session (opened by UnitOfWorkRoute). ``async`` on purpose: FastAPI runs a plain ``def``
    dependency in a worker thread, a thread hop on every request for an attribute read."""
    session: Any = getattr(request.state, "session", None)
    if session is None:
        raise RuntimeError("this route is not a UnitOfWorkRoute: no session is open")
    return session  # type: ignore[no-any-return]
