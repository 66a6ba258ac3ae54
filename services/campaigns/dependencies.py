"""FastAPI dependencies shared by this service's routers."""

from __future__ import annotations

from fastapi import Depends, Request

from services.campaigns.access import Viewer
from services.campaigns.config import Settings
from shared.auth import Principal, Role, optional_principal, require_roles
from shared.db import Database


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_viewer(principal: Principal | None = Depends(optional_principal)) -> Viewer:
    return Viewer(principal)


require_creator = require_roles(Role.CREATOR)
require_operator = require_roles(Role.OPERATOR)
require_creator_or_operator = require_roles(Role.CREATOR, Role.OPERATOR)
