"""End-to-end fixtures: the real processes (gateway, services, local Stripe server) on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from shared.testing import DatabaseFactory
from tools.stack import Stack, isolated_stack


@pytest.fixture(scope="session")
def stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        "GATEWAY_RATE_LIMIT": "1000/second",
        "STRIPE_LOCAL_ASYNC_DELAY_SECONDS": "0.5",
        # Real deadlines a few seconds away (a setting, not a back door), and workers that poll often.
        "CAMPAIGNS_MIN_CAMPAIGN_DURATION_SECONDS": "2",
        "CAMPAIGNS_SCHEDULER_POLL_SECONDS": "0.5",
        "PLEDGES_WORKER_POLL_SECONDS": "0.3",
    }
    with isolated_stack(database_factory, tmp_path_factory.mktemp("stack"), env) as running:
        yield running


@pytest.fixture
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.config.url("gateway"), timeout=10) as client:
        yield client


def read_log(stack: Stack, component: str) -> str:
    return (stack.config.data_dir / f"{component}.log").read_text(errors="replace")
