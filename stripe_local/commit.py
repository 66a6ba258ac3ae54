"""Group commit: the units of work of requests that ran in the same event-loop turn share one
SQLite transaction, and each request still answers only after its transaction committed.

Handlers are synchronous, so a batch is flushed by a callback queued behind the requests that
were already ready to run; under load that amortises BEGIN/COMMIT and the WAL writes across
many requests, and with a single client it costs nothing (a batch of one).
"""

from __future__ import annotations

import asyncio

from .db import Database, UnitOfWork


class GroupCommitter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._pending: list[tuple[UnitOfWork, asyncio.Future[None]]] = []
        self._scheduled = False
        self.batches = 0
        self.units = 0

    async def commit(self, uow: UnitOfWork) -> None:
        if uow.empty:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((uow, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._scheduled = False
        try:
            self.db.commit_many([uow for uow, _ in batch])
        except Exception as exc:  # the whole batch failed: every request in it answers 500
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.units += len(batch)
        for _, future in batch:
            if not future.done():
                future.set_result(None)
