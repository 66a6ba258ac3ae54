"""End-to-end fixtures: the real processes (gateway, services, local Stripe server) on free loopback ports."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.testing import DatabaseFactory
from tools.stack import COMPONENTS, ROOT, SERVICES, Stack, StackConfig


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="session")
def stack(database_factory: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir: Path = tmp_path_factory.mktemp("stack")
    ports = dict(zip(COMPONENTS, _free_ports(len(COMPONENTS)), strict=True))
    urls = {service: database_factory.fresh(service, ROOT / "services" / service) for service in SERVICES}
    config = StackConfig(
        data_dir=data_dir,
        ports=ports,
        database_urls=urls,
        log_to_files=True,
        extra_env={
            "GATEWAY_RATE_LIMIT": "1000/second",
            "STRIPE_LOCAL_ASYNC_DELAY_SECONDS": "0.5",
            # Real deadlines a few seconds away (a setting, not a back door), and workers that poll often.
            "CAMPAIGNS_MIN_CAMPAIGN_DURATION_SECONDS": "2",
            "CAMPAIGNS_SCHEDULER_POLL_SECONDS": "0.5",
            "PLEDGES_WORKER_POLL_SECONDS": "0.3",
        },
    )
    running = Stack(config)
    try:
        running.start_all()
        yield running
    finally:
        running.stop_all()
        for url in urls.values():
            database_factory.drop(url)


@pytest.fixture
def gateway(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.config.url("gateway"), timeout=10) as client:
        yield client


def read_log(stack: Stack, component: str) -> str:
    return (stack.config.data_dir / f"{component}.log").read_text(errors="replace")
