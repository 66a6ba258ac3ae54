"""Repository base: all SQL of a service lives in repositories built on this."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

ModelT = TypeVar("ModelT", bound=DeclarativeBase)


class RepositoryBase(Generic[ModelT]):
    model: type[ModelT]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, id: uuid.UUID, *, for_update: bool = False) -> ModelT | None:
        if for_update:
            stmt = select(self.model).where(self.model.id == id).with_for_update()  # type: ignore[attr-defined]
            return (await self.session.execute(stmt)).scalar_one_or_none()
        return await self.session.get(self.model, id)

    async def get_one_or_none(self, statement: Select[Any]) -> ModelT | None:
        return (await self.session.execute(statement)).scalar_one_or_none()  # type: ignore[no-any-return]

    async def get_all(self, statement: Select[Any]) -> Sequence[ModelT]:
        return (await self.session.execute(statement)).scalars().all()

    async def count(self, statement: Select[Any]) -> int:
        count_stmt = select(func.count()).select_from(statement.order_by(None).subquery())
        return int((await self.session.execute(count_stmt)).scalar_one())

    async def add(self, obj: ModelT, *, flush: bool = True) -> ModelT:
        self.session.add(obj)
        if flush:
            await self.session.flush()
        return obj

    def base_statement(self) -> Select[Any]:
        return select(self.model)
