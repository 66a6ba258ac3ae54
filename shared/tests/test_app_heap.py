"""A service's start-up heap is frozen out of the garbage collector's full passes while it serves."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from shared.testing import app_client


async def test_what_start_up_built_is_frozen_while_serving_and_unfrozen_after(widget_app: FastAPI) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    async with app_client(widget_app) as client:
        frozen = gc.get_freeze_count()
        # The app's routes are among the frozen objects: not in any generation a collection walks.
        route = widget_app.router.routes[-1]
        assert frozen > 1000
        assert not any(obj is route for generation in range(3) for obj in gc.get_objects(generation))
        assert (await client.get("/v1/widgets")).status_code == 200
        gc.collect()  # a full collection while serving leaves it frozen
        assert not any(obj is route for generation in range(3) for obj in gc.get_objects(generation))
    assert gc.get_freeze_count() == 0
    assert any(obj is route for obj in gc.get_objects(2))  # collectable again once the app stopped
