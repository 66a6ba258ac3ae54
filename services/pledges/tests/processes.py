"""Real service processes for tests (uvicorn on a free loopback port), started the way tools/stack.py does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import httpx

from stripe_local.testing import free_port

ROOT = Path(__file__).resolve().parents[3]
STARTUP_TIMEOUT_SECONDS = 30.0


class ServiceProcess:
    """``python -m uvicorn --factory services.<name>.app:create_app`` with ``env`` added."""

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path, port: int | None = None) -> None:
        self.name = name
        self.env = dict(env)
        self.port = port or free_port()
        self.log_path = log_dir / f"{name}-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServiceProcess:
        prefix = self.name.upper() + "_"
        environ = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
        environ.update({"PYTHONUNBUFFERED": "1", **self.env})
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"services.{self.name}.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=environ,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at startup; see {self.log_path}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not become ready; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close()

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        self.process = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class CampaignsProcess(ServiceProcess):
    def __init__(self, database_url: str, log_dir: Path, *, pledges_events_url: str | None = None) -> None:
        env = {
            "CAMPAIGNS_DATABASE_URL": database_url,
            "CAMPAIGNS_ENVIRONMENT": "test",
            # Deadlines a few seconds away are allowed, so a test reaches a real deadline by waiting.
            "CAMPAIGNS_MIN_CAMPAIGN_DURATION_SECONDS": "1",
            "CAMPAIGNS_SCHEDULER_POLL_SECONDS": "0.2",
            "CAMPAIGNS_EVENT_RELAY_ENABLED": "true" if pledges_events_url else "false",
        }
        if pledges_events_url:
            env["CAMPAIGNS_PLEDGES_EVENTS_URL"] = pledges_events_url
        super().__init__("campaigns", env, log_dir)


class RefundsProcess(ServiceProcess):
    """The real refunds service (workers on), reporting outcomes to ``pledges_url``."""

    def __init__(
        self,
        database_url: str,
        log_dir: Path,
        *,
        pledges_url: str,
        campaigns_url: str,
        stripe_url: str,
        port: int | None = None,
    ) -> None:
        env = {
            "REFUNDS_DATABASE_URL": database_url,
            "REFUNDS_ENVIRONMENT": "test",
            "REFUNDS_PLEDGES_URL": pledges_url,
            "REFUNDS_CAMPAIGNS_URL": campaigns_url,
            "REFUNDS_STRIPE_API_BASE": stripe_url,
            "REFUNDS_WORKER_POLL_SECONDS": "0.05",
            "REFUNDS_WORKER_RETRY_DELAY_SECONDS": "0.2",
        }
        super().__init__("refunds", env, log_dir, port)


class LoopbackApp:
    """An ASGI app (with its lifespan) served by uvicorn on a free loopback port, in a background thread: here,
    a second replica of pledges on the same database, for the refunds service to report outcomes to."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoopbackApp:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("loopback app did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
