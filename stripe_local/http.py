"""Bare ASGI plumbing: this server speaks ASGI directly (no framework routing) for speed and so it
can do what frameworks hide, such as dropping a connection after the work is committed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON = (b"content-type", b"application/json")


class ConnectionDropped(Exception):
    """Raised where no socket can be aborted (in-process ASGI transports in tests)."""


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b""
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def send_bytes(send: Send, status: int, body: bytes, headers: Headers) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: Any, headers: Headers | None = None) -> None:
    await send_bytes(send, status, orjson.dumps(payload), [JSON, *(headers or [])])


async def drop_connection(receive: Receive) -> None:
    """Abort the TCP connection without answering - the response is lost in transit.

    uvicorn's ``receive`` is a bound method of its request cycle, which owns the transport;
    aborting it is the only way an ASGI app can simulate a dropped connection.
    """
    cycle = getattr(receive, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionDropped("stripe_local dropped the connection (fault injection)")
    transport.abort()
    # Let uvicorn observe connection_lost before the app returns, so it does not log an error.
    await asyncio.sleep(0)
    await asyncio.sleep(0)
