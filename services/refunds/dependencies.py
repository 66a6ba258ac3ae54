"""FastAPI dependencies shared by this service's routers. All ``async def``: FastAPI runs a plain ``def``
dependency in a worker thread, a thread hop on every request for an attribute read."""

from __future__ import annotations

from fastapi import Request

from services.refunds.clients import CampaignsClient, PledgesClient
from services.refunds.config import Settings
from shared.auth import Role, require_roles
from shared.db import Database


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_database(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


async def get_pledges(request: Request) -> PledgesClient:
    return request.app.state.pledges  # type: ignore[no-any-return]


async def get_campaigns(request: Request) -> CampaignsClient:
    return request.app.state.campaigns  # type: ignore[no-any-return]


require_operator = require_roles(Role.OPERATOR)
require_creator_or_operator = require_roles(Role.CREATOR, Role.OPERATOR)
# Reading a batch: operators, and creators for the single refunds they asked for (the repository filters).
require_reader = require_roles(Role.CREATOR, Role.OPERATOR)
