"""Fixtures: the app in-process (ASGI transport) and helpers to speak Stripe's form encoding."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from stripe._encode import _api_encode  # the SDK's own encoder: tests send exactly what the SDK sends

from stripe_local.app import StripeLocalApp, create_app
from stripe_local.config import Settings
from stripe_local.testing import stripe_local_server, stripe_local_session_server  # noqa: F401 - fixtures

API_KEY = "sk_test_local"


def shared_dir() -> Path:
    """The repo is checked out at <somewhere>/main with shared/ beside it."""
    candidate = Path(__file__).resolve().parents[2] / ".." / "shared"
    if candidate.is_dir():
        return candidate.resolve()
    env = os.environ.get("CROWDFUND_SHARED_DIR")
    if env and Path(env).is_dir():
        return Path(env)
    pytest.fail("shared/ not found next to the repository; set CROWDFUND_SHARED_DIR")


def encode(params: dict[str, Any] | None) -> str:
    return urlencode(list(_api_encode(params or {}))).replace("%5B", "[").replace("%5D", "]")


class Api:
    """A raw client for the in-process app: Stripe form encoding, bearer key, JSON answers."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.app: StripeLocalApp | None = None

    async def request(
        self, method: str, path: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {API_KEY}", **(headers or {})}
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return await self.client.post(path, content=encode(params), headers=headers)
        query = encode(params)
        return await self.client.request(method, path + (f"?{query}" if query else ""), headers=headers)

    async def post(self, path: str, params: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
        return await self.request("POST", path, params, {k.replace("_", "-"): v for k, v in headers.items()})

    async def get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        return await self.request("GET", path, params)

    async def ok(self, method: str, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.request(method, path, params)
        assert response.status_code == 200, response.text
        return response.json()

    async def local(self, method: str, path: str, json: Any = None) -> Any:
        response = await self.client.request(method, f"/_local/{path}", json=json)
        assert response.status_code == 200, response.text
        return response.json()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "db": str(tmp_path / "stripe_local.sqlite3"),
        "rate_limit": 0.0,
        "async_delay_seconds": 3600.0,
    }
    base.update(overrides)
    return Settings(**base)


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Api]:
    """The app in-process with its background workers running, and a client for it."""
    application = create_app(settings)
    await application.start()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application), base_url="http://stripe.local"
        ) as client:
            api = Api(client)
            api.app = application
            yield api
    finally:
        await application.stop()
        application.db.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[StripeLocalApp]:
    application = create_app(settings)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()
        application.db.close()


@pytest.fixture
async def api(app: StripeLocalApp) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://stripe.local") as client:
        api = Api(client)
        api.app = app
        yield api


class WebhookReceiver:
    """A real HTTP endpoint that records webhook deliveries; answers 500 to the first ``fail_first``."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes, int]] = []
        self.fail_first = 0
        self.delay = 0.0
        self.url = ""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if self.delay:
            import asyncio

            await asyncio.sleep(self.delay)
        status = 500 if len(self.deliveries) < self.fail_first else 200
        self.deliveries.append((headers, b"".join(chunks), status))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    def events(self) -> list[dict[str, Any]]:
        import orjson

        return [orjson.loads(body) for _, body, status in self.deliveries if status == 200]

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        import asyncio
        import time

        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; received {[e['type'] for e in self.events()]}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    import asyncio
    import socket

    import uvicorn

    receiver = WebhookReceiver()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    receiver.url = f"http://127.0.0.1:{sock.getsockname()[1]}/webhooks/stripe"
    server = uvicorn.Server(uvicorn.Config(receiver, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
        sock.close()
