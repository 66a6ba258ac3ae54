"""`refunds watch`: reconnection when the progress stream drops, the exit codes, the plain lines of a pipe."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from crowdfund_cli.api import ApiError, Unreachable
from crowdfund_cli.context import EXIT_BATCH_CANCELED, EXIT_BATCH_FAILED_ITEMS
from crowdfund_cli.sse import ServerSentEvent
from crowdfund_cli.watch import MAX_RECONNECTS, LiveBar, PlainLines, exit_code, follow


def figures(status: str, done: int, total: int = 4, *, failed: int = 0, follow_up: int = 0) -> dict[str, Any]:
    by_status = [
        {"status": "succeeded", "count": done - failed, "amounts": [{"currency": "USD", "amount": 500 * (done - failed), "count": done - failed}]},
        {"status": "failed", "count": failed, "amounts": []},
        {"status": "queued", "count": total - done, "amounts": []},
    ]  # fmt: skip
    return {
        "batch_id": "b1",
        "status": status,
        "progress": {
            "by_status": by_status,
            "total_items": total,
            "done_items": done,
            "queued_items": total - done,
            "follow_up_items": follow_up,
            "refunded_amounts": [{"currency": "USD", "amount": 500 * (done - failed), "count": done - failed}],
            "rate_per_second": 2.0,
            "eta_seconds": (total - done) / 2,
            "percent_done": 100 * done / total,
        },
    }


def event(name: str, event_id: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(name, json.dumps(data), event_id)


class ScriptedStream:
    """Each connection plays the next script: its events, then the exception it ends with (if any)."""

    def __init__(self, *scripts: tuple[list[ServerSentEvent], Exception | None]) -> None:
        self.scripts = list(scripts)
        self.connections: list[str | None] = []  # the Last-Event-ID each connection sent

    def events(self, path: str, last_event_id: str | None = None) -> Iterator[ServerSentEvent]:
        assert path == "/v1/refund-batches/b1/events"
        self.connections.append(last_event_id)
        played, error = self.scripts.pop(0)
        yield from played
        if error is not None:
            raise error


def test_a_dropped_stream_is_resumed_with_the_last_event_id_and_backoff() -> None:
    stream = ScriptedStream(
        ([event("progress", "1", figures("running", 1))], httpx.RemoteProtocolError("peer closed")),
        ([], httpx.ConnectError("refused")),  # the gateway restarting
        ([event("progress", "1", figures("running", 3))], None),  # the server ended the stream early
        ([event("progress", "1", figures("completed", 4)), event("end", "2", figures("completed", 4))], None),
    )
    slept: list[float] = []
    reconnects: list[tuple[str, int]] = []
    seen = list(follow(stream, "b1", sleep=slept.append, on_reconnect=lambda r, n: reconnects.append((r, n))))
    assert [(name, data["progress"]["done_items"]) for name, _id, data in seen] == [
        ("progress", 1),
        ("progress", 3),
        ("progress", 4),
        ("end", 4),
    ]
    assert stream.connections == [None, "1", "1", "1"]
    assert slept == [1.0, 2.0, 1.0]  # backoff doubles while failing, starts over after a working connection
    assert [n for _reason, n in reconnects] == [1, 2, 1]
    assert reconnects[0][0] == "RemoteProtocolError"


def test_the_server_retry_field_sets_the_backoff() -> None:
    stream = ScriptedStream(
        ([ServerSentEvent("progress", json.dumps(figures("running", 1)), "1", 250)], httpx.ReadTimeout("quiet")),
        ([event("end", "2", figures("completed", 4))], None),
    )
    slept: list[float] = []
    assert len(list(follow(stream, "b1", sleep=slept.append))) == 2
    assert slept == [0.25]


def test_a_gateway_never_reached_fails_at_once() -> None:
    stream = ScriptedStream(([], httpx.ConnectError("refused")))
    slept: list[float] = []
    with pytest.raises(Unreachable):
        list(follow(stream, "b1", sleep=slept.append))
    assert slept == []


def test_an_unknown_batch_is_not_retried_but_a_503_after_a_drop_is() -> None:
    with pytest.raises(ApiError):
        list(
            follow(ScriptedStream(([], ApiError(404, {"code": "refund_batch_not_found"}))), "b1", sleep=lambda _s: None)
        )
    stream = ScriptedStream(
        ([event("progress", "1", figures("running", 1))], httpx.ReadError("reset")),
        ([], ApiError(503, {"code": "upstream_unavailable"})),
        ([event("end", "1", figures("completed", 4))], None),
    )
    assert [name for name, _id, _data in follow(stream, "b1", sleep=lambda _s: None)] == ["progress", "end"]


def test_it_gives_up_after_too_many_drops_in_a_row() -> None:
    first = ([event("progress", "1", figures("running", 1))], httpx.ReadError("reset"))
    stream = ScriptedStream(first, *[([], httpx.ConnectError("refused"))] * MAX_RECONNECTS)
    with pytest.raises(Unreachable, match="lost the progress stream"):
        list(follow(stream, "b1", sleep=lambda _s: None))


def test_exit_codes_tell_how_the_batch_ended() -> None:
    assert exit_code(figures("completed", 4)) == 0
    assert exit_code(figures("completed", 4, failed=1)) == EXIT_BATCH_FAILED_ITEMS
    assert exit_code(figures("completed", 4, follow_up=1)) == EXIT_BATCH_FAILED_ITEMS
    assert exit_code(figures("canceled", 2)) == EXIT_BATCH_CANCELED


def test_plain_lines_are_written_when_the_counts_move_not_for_a_new_rate(capsys: pytest.CaptureFixture[str]) -> None:
    view = PlainLines()
    slower = figures("running", 1)
    slower["progress"]["rate_per_second"] = 1.0
    for data in (figures("running", 1), slower, figures("running", 2), figures("completed", 4)):
        view.show("progress", "1", data)
    assert capsys.readouterr().out.splitlines() == [
        "running: 1/4 done (25%), 0 failed, refunded 5.00 USD, 2.0/s, ETA 2s",
        "running: 2/4 done (50%), 0 failed, refunded 10.00 USD, 2.0/s, ETA 1s",
        "completed: 4/4 done (100%), 0 failed, refunded 20.00 USD, 2.0/s, ETA 0s",
    ]


def test_the_live_bar_shows_counts_amounts_rate_and_eta(capsys: pytest.CaptureFixture[str]) -> None:
    with LiveBar() as view:
        view.show("progress", "3", figures("running", 3, failed=1))
    shown = capsys.readouterr().out
    for part in ("running", "3/4", "1 failed", "10.00 USD", "2.0/s", "ETA 0s"):
        assert part in shown, shown
