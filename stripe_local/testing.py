"""Helpers for other packages' tests: run stripe_local as a real subprocess on a free loopback port.

    from stripe_local.testing import stripe_local_server   # a pytest fixture; re-export it in conftest.py

    async def test_pledge(stripe_local_server):
        client = stripe.StripeClient("sk_test_local", base_addresses={"api": stripe_local_server.url}, ...)

or, outside pytest::

    with StripeLocalProcess(db_path=tmp / "stripe.sqlite3") as server:
        ...  # server.url, server.restart(), server.kill()
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import pytest

STARTUP_TIMEOUT_SECONDS = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StripeLocalProcess:
    """One ``python -m stripe_local`` process. ``env`` adds ``STRIPE_LOCAL_*`` settings."""

    def __init__(
        self, db_path: str | Path | None = None, env: Mapping[str, str] | None = None, port: int | None = None
    ) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if db_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="stripe_local_")
            db_path = Path(self._tmp.name) / "stripe_local.sqlite3"
        self.db_path = Path(db_path)
        self.env = {"STRIPE_LOCAL_RATE_LIMIT": "0", **(env or {})}
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # Server output goes to a file, never to an unread pipe that could fill up and block it.
        self.log_path = self.db_path.with_suffix(".log")
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StripeLocalProcess:
        for attempt in range(3):
            environ = {**os.environ, **self.env}
            self._log = open(self.log_path, "ab")
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "stripe_local",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--db",
                    str(self.db_path),
                ],
                env=environ,
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
            if self._wait_healthy():
                return self
            self._terminate()
            self.port = free_port()  # the port was probably taken between probing and binding
            if attempt == 2:
                break
        raise RuntimeError("stripe_local did not become healthy")

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        return False

    def _terminate(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._close_log()
        self.process = None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self) -> None:
        """SIGKILL: nothing gets to flush - what was acknowledged must already be on disk."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self._close_log()
            self.process = None

    def restart(self) -> StripeLocalProcess:
        self._terminate()
        return self.start()

    def stop(self) -> None:
        self._terminate()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def local(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        """Call a ``/_local/`` control route and return its JSON."""
        response = httpx.request(method, f"{self.url}/_local/{path}", json=json, params=params or None, timeout=30)
        response.raise_for_status()
        return response.json()

    def __enter__(self) -> StripeLocalProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture
def stripe_local_server(tmp_path: Path) -> Iterator[StripeLocalProcess]:
    """A fresh server per test (its own database), rate limiter off; yields the process (``.url``)."""
    with StripeLocalProcess(db_path=tmp_path / "stripe_local.sqlite3") as server:
        yield server


@pytest.fixture(scope="session")
def stripe_local_session_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeLocalProcess]:
    """One server shared by a whole test session - faster; tests must not depend on global state."""
    path = tmp_path_factory.mktemp("stripe_local") / "stripe_local.sqlite3"
    with StripeLocalProcess(db_path=path) as server:
        yield server
