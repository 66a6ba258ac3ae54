"""A background loop that runs ``tick()`` when woken or when its idle timeout expires.

It stops on a flag rather than by cancellation alone: on Python 3.11 ``asyncio.wait_for`` can
swallow a cancellation that races with its inner future (CPython gh-86296), which would leave a
``while True`` loop running and ``stop()`` waiting forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

logger = logging.getLogger("stripe_local.worker")


class BackgroundWorker:
    name = "worker"

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name=f"stripe_local.{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=1.0)
        if not done:  # busy in I/O (a slow webhook endpoint): cancel it
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tick(self) -> None:
        raise NotImplementedError

    def idle_timeout(self) -> float:
        return 1.0

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except Exception:  # keep the worker alive; its durable rows stay pending
                logger.exception("%s.crashed", self.name)
            if self._stopping:
                return
            try:
                async with asyncio.timeout(self.idle_timeout()):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
