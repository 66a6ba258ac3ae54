"""HTTP to the gateway: bearer token, timeouts, idempotency keys on creates, problem+json turned into errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO

import httpx

from crowdfund_cli import sse
from crowdfund_cli.config import Config
from crowdfund_cli.sse import ServerSentEvent


class ApiError(Exception):
    """The API answered with an error (a problem document)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        self.status = status
        self.problem = problem


class Unreachable(Exception):
    """The gateway could not be reached at all."""


class Api:
    def __init__(self, config: Config) -> None:
        headers = {"user-agent": "crowdfund-cli"}
        if config.token:
            headers["authorization"] = f"Bearer {config.token}"
        self._client = httpx.Client(
            base_url=config.gateway_url,
            headers=headers,
            timeout=httpx.Timeout(config.timeout_seconds, connect=5.0),
        )
        # A stream is quiet between changes; the server sends a keep-alive comment every 15 s, so a read
        # timeout of a few of those tells a dead connection from a quiet one.
        self._stream_timeout = httpx.Timeout(
            config.timeout_seconds, connect=5.0, read=config.stream_read_timeout_seconds
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        accept: str | None = None,
    ) -> httpx.Response:
        headers = {}
        if idempotency_key:
            headers["idempotency-key"] = idempotency_key
        if accept:
            headers["accept"] = accept
        clean_params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._client.request(method, path, json=json, params=clean_params, headers=headers)
        except httpx.TransportError as exc:
            raise Unreachable(f"cannot reach the gateway at {self._client.base_url}: {type(exc).__name__}") from exc
        if response.is_error:
            raise ApiError(response.status_code, _problem(response))
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def create(self, path: str, body: Any, idempotency_key: str | None = None) -> Any:
        """POST that creates something: always with an Idempotency-Key (a new one unless given)."""
        return self.request("POST", path, json=body, idempotency_key=idempotency_key or str(uuid.uuid4())).json()

    def post(self, path: str, body: Any = None) -> Any:
        response = self.request("POST", path, json=body)
        return response.json() if response.content else None

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body).json()

    def download(self, path: str, sink: BinaryIO, *, params: dict[str, Any] | None = None) -> int:
        """Stream a (possibly large) body into ``sink``; the bytes written."""
        written = 0
        try:
            with self._client.stream("GET", path, params=params) as response:
                if response.is_error:
                    response.read()
                    raise ApiError(response.status_code, _problem(response))
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise Unreachable(f"lost the connection to the gateway: {type(exc).__name__}") from exc
        return written

    def events(self, path: str, last_event_id: str | None = None) -> Iterator[ServerSentEvent]:
        """One connection to a Server-Sent Events stream. Raises httpx.TransportError when it drops (the
        caller decides whether to reconnect), ApiError when the API refuses it."""
        headers = {"accept": "text/event-stream", "cache-control": "no-cache"}
        if last_event_id is not None:
            headers["last-event-id"] = last_event_id
        with self._client.stream("GET", path, headers=headers, timeout=self._stream_timeout) as response:
            if response.is_error:
                response.read()
                raise ApiError(response.status_code, _problem(response))
            yield from sse.parse(response.iter_lines())


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
        if isinstance(body, dict):
            return body
    except ValueError:
        pass
    return {"title": response.reason_phrase, "status": response.status_code, "code": "http_error"}
