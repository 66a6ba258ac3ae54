"""FastAPI dependencies shared by this service's routers."""

from __future__ import annotations

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from services.campaigns.access import Viewer
from services.campaigns.config import Settings
from shared.auth import Principal, Role, optional_principal, require_roles
from shared.db import Database
from shared.unit_of_work import get_session

# Every dependency here is ``async def``: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
# hop (and its locks) on every request for what is an attribute read.


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def request_session(request: Request) -> AsyncSession:
    """The request's unit-of-work session (``shared.unit_of_work.get_session``)."""
    return await get_session(request)


async def get_viewer(principal: Principal | None = Depends(optional_principal)) -> Viewer:
    return Viewer(principal)


require_creator = require_roles(Role.CREATOR)
require_operator = require_roles(Role.OPERATOR)
require_creator_or_operator = require_roles(Role.CREATOR, Role.OPERATOR)
