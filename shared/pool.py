"""A connection pool that serves its waiters first come, first served.

SQLAlchemy's ``AsyncAdaptedQueuePool`` keeps its idle connections in an ``asyncio.Queue``. When a connection
comes back while tasks are waiting, the queue wakes the first waiter but leaves the connection in the queue
until that waiter runs, a turn of the event loop later; meanwhile any task that asks takes it at once (the
pool tries ``get_nowait`` before waiting), and the robbed waiter queues again at the back. Under load, when the
loop is tens of milliseconds behind, newcomers kept winning: in the launch rush (pool of 20, 100 pledges in
flight) waits for a connection were p50 0.1 ms but p99 1.5 s and max 4.4 s, and one request waited out the
5 s ``pool_timeout`` (a 503) while others got connections in microseconds.

Here a returned connection is handed to the oldest waiter directly (it never sits where a newcomer can take
it), and a newcomer takes an idle connection only when nobody is waiting. The pool is SQLAlchemy's own, given
this queue through ``QueuePool``'s class attribute ``_queue_class`` (private: SQLAlchemy is pinned, and
``shared/tests/test_pool.py`` fails if the pool stops using it).
"""

from __future__ import annotations

import asyncio
from collections import deque
from contextlib import suppress
from typing import Any, TypeVar

from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_
from sqlalchemy.util.queue import Empty, Full, QueueCommon

_T = TypeVar("_T")


class HandOffQueue(QueueCommon[_T]):
    """The pool's idle connections, and the tasks waiting for one, each in arrival order."""

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo
        self._idle: deque[_T] = deque()
        self._waiters: deque[asyncio.Future[_T]] = deque()

    def empty(self) -> bool:
        return not self._idle

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._idle)

    def qsize(self) -> int:
        return len(self._idle)

    def put_nowait(self, item: _T) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._idle.append(item)

    def put(self, item: _T, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # never waits: the pool holds at most maxsize connections

    def get_nowait(self) -> _T:
        if not self._idle:
            raise Empty()
        return self._idle.pop() if self.use_lifo else self._idle.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> _T:
        if self._idle or not block:
            return self.get_nowait()  # an idle connection means nobody is waiting (returns go to waiters)
        return await_(self._wait(timeout))  # type: ignore[no-any-return]

    async def _wait(self, timeout: float | None) -> _T:
        waiter: asyncio.Future[_T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                # Handed a connection, but timed out or cancelled before taking it: pass it on, never lose it.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
                with suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(exc, TimeoutError):
                raise Empty() from None
            raise


class FairAsyncAdaptedQueuePool(AsyncAdaptedQueuePool):
    """``AsyncAdaptedQueuePool`` with first-come, first-served waiters (see the module's docstring)."""

    _queue_class: Any = HandOffQueue
