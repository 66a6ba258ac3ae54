"""The Server-Sent Events parser, on the examples of the WHATWG specification and on an httpx stream whose
events arrive split across chunks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from crowdfund_cli.sse import ServerSentEvent, parse


def test_fields_comments_and_multi_line_data() -> None:
    lines = [
        ": ping - a comment, skipped",
        "event: progress",
        "id: 1",
        "data: {",
        'data: "a": 1}',
        "",
        "data:no space after the colon",
        "",
    ]
    assert list(parse(lines)) == [
        ServerSentEvent("progress", '{\n"a": 1}', "1"),
        ServerSentEvent("message", "no space after the colon", "1"),  # the last id carries over
    ]


def test_an_event_without_data_is_not_dispatched_and_retry_is_kept() -> None:
    lines = ["retry: 2500", "event: end", "", "event: end", "data: {}", "", "retry: soon", "data: x", ""]
    assert list(parse(lines)) == [
        ServerSentEvent("end", "{}", None, 2500),
        ServerSentEvent("message", "x", None, 2500),  # a retry that is not a number is ignored
    ]


def test_an_event_still_open_when_the_stream_ends_is_dropped() -> None:
    assert list(parse(["event: progress", "data: half"])) == []


def test_events_split_across_chunks_and_crlf_line_endings() -> None:
    body = b'event: progress\r\nid: 7\r\ndata: {"done": 1}\r\n\r\n: ping\r\n\r\nevent: end\r\ndata: {}\r\n\r\n'

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 5):
            yield body[i : i + 5]

    transport = httpx.MockTransport(lambda _request: httpx.Response(200, content=chunks()))
    with httpx.Client(transport=transport) as client, client.stream("GET", "http://test/events") as response:
        events = list(parse(response.iter_lines()))
    assert events == [ServerSentEvent("progress", '{"done": 1}', "7"), ServerSentEvent("end", "{}", "7")]
