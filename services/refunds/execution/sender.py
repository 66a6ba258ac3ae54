"""An event loop in a thread of its own, for the calls to Stripe: they wake on time whatever the service's main
loop is doing.

The fleet rate limit hands out send slots ``(1 + 2%) / rate`` apart and gives up a slot its caller woke up more
than 20 ms late for (``execution/rate_limit.py``): that is what keeps every 1-second window at or under the
limit. On the service's main loop, the other work of a replica (recording outcomes, reporting them to
pledges, webhooks, API requests) delays those wake-ups past 20 ms often on a loaded 2-core machine, and each
late wake-up gives up a slot: a 20,000-refund batch at 100/s reached 89.3% of the limit on a slow machine.
Here, the waits for slots and the HTTP calls run on a loop that does nothing else; the thread needs the GIL for
a moment to wake, which Python grants within its switch interval (5 ms). Measured with the main loop busy 60 ms
five times a second: the limiter alone, 78% of a 100/s limit on the main loop and 98% here (no slot given up,
no second above 100); a batch at 50/s (``test_a_busy_main_loop_does_not_cost_the_batch_its_rate``), 35/s with
75-87 slots given up on the main loop, 44-47/s with 1-13 here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class SenderLoop:
    def __init__(self, name: str = "refunds-stripe") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            ready.set()
            try:
                loop.run_forever()
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the sender loop and wait for it here. Cancelling the waiter cancels it there."""
        assert self._loop is not None, "SenderLoop.start() was not called"
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def stop(self) -> None:
        """Cancel what still runs there (its waiters get CancelledError), then end the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            with_tasks = asyncio.run_coroutine_threadsafe(_cancel_all(), loop)
            await asyncio.wrap_future(with_tasks)
            loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, 10)
        self._loop = self._thread = None


async def _cancel_all() -> None:
    current = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks() if task is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
