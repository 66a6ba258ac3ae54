"""Server-Sent Events, read from an httpx line stream.

The parsing rules are the WHATWG ones (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)
restricted to what a client needs: ``event``, ``data`` (joined by newlines), ``id`` and ``retry``; comments
(``:`` lines, which carry the server's keep-alive pings) are skipped. It is a few lines, so no dependency:
``httpx-sse`` would replace only this parser, and reconnection (the part that needs care) is ours either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry_ms: int | None = None


def parse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    """Events from the stream's lines (without their line endings); an event ends at a blank line."""
    event = ""
    data: list[str] = []
    event_id: str | None = None
    retry: int | None = None
    for line in lines:
        if not line:
            if data:  # an event without a data line is not dispatched (the spec)
                yield ServerSentEvent(event or "message", "\n".join(data), event_id, retry)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value  # the spec keeps the last id across events: it is what a reconnection resumes from
        elif name == "retry" and value.isdigit():
            retry = int(value)
