"""Runs the whole system as real processes on loopback: the local Stripe server, the three services and the
gateway. ``make run`` uses it in the foreground; the end-to-end tests use :class:`Stack` to start, stop and
SIGKILL individual processes.

    python -m tools.stack run            # SQLite files in ./data, ports 8000-8003 and 12111
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import httpx

from shared.auth import issue_user_token
from shared.migrations import upgrade
from shared.settings import DEV_ISSUER, DEV_JWT_SECRET

if TYPE_CHECKING:
    from shared.testing import DatabaseFactory

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("campaigns", "pledges", "refunds")
# Start order; stopped in reverse.
COMPONENTS = ("stripe", *SERVICES, "gateway")
DEFAULT_PORTS = {"gateway": 8000, "campaigns": 8001, "pledges": 8002, "refunds": 8003, "stripe": 12111}
DEV_WEBHOOK_SECRET = "whsec_dev_local_only_0123456789abcdef"


def webhook_events() -> dict[str, list[str]]:
    """The events each service's webhook endpoint subscribes to: those it handles, as a live Stripe endpoint is
    set up. Subscribed to every event ("*"), each all-or-nothing pledge sent ~8 deliveries (its customer,
    payment method and SetupIntent events, to both services) through the gateway, where 1 is used."""
    from services.pledges.webhooks.service import HANDLED_EVENTS
    from services.refunds.webhooks.service import HANDLED_TYPES

    return {"pledges": sorted(HANDLED_EVENTS), "refunds": sorted(HANDLED_TYPES)}


@dataclass
class StackConfig:
    data_dir: Path = ROOT / "data"
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    database_urls: dict[str, str] = field(default_factory=dict)  # default: SQLite file per service in data_dir
    extra_env: dict[str, str] = field(default_factory=dict)
    log_to_files: bool = False  # tests: one log file per process in data_dir; `make run`: prefixed on stdout

    def url(self, component: str) -> str:
        return f"http://{self.host}:{self.ports[component]}"

    def database_url(self, service: str) -> str:
        return self.database_urls.get(service) or f"sqlite+aiosqlite:///{self.data_dir / f'{service}.sqlite3'}"


class Stack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._log_files: dict[str, IO[bytes]] = {}

    # -- configuration -------------------------------------------------------------------------------------
    def environment(self) -> dict[str, str]:
        c = self.config
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAMPAIGNS_", "PLEDGES_", "REFUNDS_"))}
        env["PYTHONUNBUFFERED"] = "1"
        for service in SERVICES:
            prefix = service.upper() + "_"
            env[prefix + "DATABASE_URL"] = c.database_url(service)
            env[prefix + "CAMPAIGNS_URL"] = c.url("campaigns")
            env[prefix + "PLEDGES_URL"] = c.url("pledges")
            env[prefix + "REFUNDS_URL"] = c.url("refunds")
            env[prefix + "STRIPE_API_BASE"] = c.url("stripe")
            env[prefix + "STRIPE_WEBHOOK_SECRET"] = DEV_WEBHOOK_SECRET
        # Where each producer's outbox relay delivers events (the consumer's internal inbox route).
        env["CAMPAIGNS_PLEDGES_EVENTS_URL"] = c.url("pledges") + "/internal/events"
        env["PLEDGES_CAMPAIGNS_EVENTS_URL"] = c.url("campaigns") + "/internal/events"
        for service in SERVICES:
            env[f"GATEWAY_{service.upper()}_URL"] = c.url(service)
        env["STRIPE_LOCAL_DB"] = str(c.data_dir / "stripe_local.sqlite3")
        env["STRIPE_LOCAL_WEBHOOK_ENDPOINTS"] = json.dumps(
            [
                {
                    "url": f"{c.url('gateway')}/v1/webhooks/stripe/{service}",
                    "secret": DEV_WEBHOOK_SECRET,
                    "enabled_events": events,
                }
                for service, events in webhook_events().items()
            ]
        )
        env.update(c.extra_env)
        return env

    def command(self, component: str) -> list[str]:
        c = self.config
        if component == "stripe":
            return [sys.executable, "-m", "stripe_local", "--host", c.host, "--port", str(c.ports["stripe"])]
        factory = "gateway.app:create_app" if component == "gateway" else f"services.{component}.app:create_app"
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            c.host,
            "--port",
            str(c.ports[component]),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--timeout-graceful-shutdown",
            "5",
            # Longer than any client's idle pool (15 s): a server must never close a connection that a client
            # is about to reuse, or the client's next request fails (a 502 at the gateway).
            "--timeout-keep-alive",
            "65",
            "--log-level",
            "warning",
        ]

    # -- lifecycle -----------------------------------------------------------------------------------------
    def migrate(self) -> None:
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        for service in SERVICES:
            upgrade(ROOT / "services" / service, self.config.database_url(service))

    def start(self, component: str, *, wait: bool = True) -> None:
        if component in self.processes and self.processes[component].poll() is None:
            raise RuntimeError(f"{component} is already running")
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        if self.config.log_to_files:
            log = open(self.config.data_dir / f"{component}.log", "ab")
            self._log_files[component] = log
            process = subprocess.Popen(
                self.command(component),
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        else:
            process = subprocess.Popen(
                self.command(component),
                cwd=ROOT,
                env=self.environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            threading.Thread(target=_prefix_output, args=(component, process.stdout), daemon=True).start()
        self.processes[component] = process
        if wait:
            self.wait_healthy(component)

    def start_all(self, components: Iterable[str] = COMPONENTS) -> None:
        self.migrate()
        for component in components:
            self.start(component, wait=False)
        for component in components:
            self.wait_healthy(component)

    def wait_healthy(self, component: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        url = self.config.url(component) + "/healthz"
        while time.monotonic() < deadline:
            process = self.processes.get(component)
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{component} exited with code {process.returncode}; see its log")
            try:
                if httpx.get(url, timeout=1.0).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{component} did not become healthy at {url} within {timeout}s")

    def stop(self, component: str, *, timeout: float = 10.0) -> None:
        process = self.processes.pop(component, None)
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if log := self._log_files.pop(component, None):
            log.close()

    def kill(self, component: str) -> None:
        """SIGKILL: the process dies at whatever line it is on (crash-recovery tests)."""
        process = self.processes.pop(component)
        process.kill()
        process.wait()
        if log := self._log_files.pop(component, None):
            log.close()

    def stop_all(self) -> None:
        for component in reversed(COMPONENTS):
            self.stop(component)

    def running(self) -> dict[str, int | None]:
        return {name: p.poll() for name, p in self.processes.items()}


def free_ports(n: int) -> list[int]:
    """n distinct free loopback ports (bound together, so never the same twice)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextmanager
def isolated_stack(
    databases: DatabaseFactory,
    data_dir: Path,
    extra_env: dict[str, str],
    components: Iterable[str] = COMPONENTS,
) -> Iterator[Stack]:
    """Tests: the real processes on free ports, each service on a fresh migrated database of its own; stopped
    and the databases dropped afterwards."""
    urls = {service: databases.fresh(service, ROOT / "services" / service) for service in SERVICES}
    config = StackConfig(
        data_dir=data_dir,
        ports=dict(zip(COMPONENTS, free_ports(len(COMPONENTS)), strict=True)),
        database_urls=urls,
        log_to_files=True,
        extra_env=extra_env,
    )
    running = Stack(config)
    try:
        running.start_all(components)
        yield running
    finally:
        running.stop_all()
        for url in urls.values():
            databases.drop(url)


def _prefix_output(component: str, stream: IO[bytes] | None) -> None:
    if stream is None:
        return
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{component:>9} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def dev_token(subject: str, *roles: str, ttl_seconds: int = 12 * 3600) -> str:
    secret = os.environ.get("GATEWAY_JWT_SECRET", DEV_JWT_SECRET)
    return issue_user_token(secret, subject, roles, issuer=DEV_ISSUER, ttl_seconds=ttl_seconds)


def _banner(config: StackConfig) -> str:
    gateway = config.url("gateway")
    lines = [
        "",
        "Crowdfund is running (embedded default: SQLite files in ./data, local Stripe server).",
        f"  Gateway        {gateway}",
        f"  API docs       {gateway}/docs   (OpenAPI: {gateway}/openapi.json)",
        f"  Health         {gateway}/healthz",
        f"  Stripe (local) {config.url('stripe')}",
        "",
        "Development tokens (valid 12 hours; `make token ROLE=... SUB=...` makes more):",
    ]
    for subject, role in (("alice", "backer"), ("carol", "creator"), ("oscar", "operator")):
        lines.append(f"  {role:<9} ({subject}): {dev_token(subject, role)}")
    lines += [
        "",
        f'Try: curl -H "Authorization: Bearer $TOKEN" {gateway}/v1/campaigns',
        "Press Ctrl-C to stop everything.",
        "",
    ]
    return "\n".join(lines)


def run(config: StackConfig) -> int:
    stack = Stack(config)
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        print("Migrating databases...", flush=True)
        stack.start_all()
        print(_banner(config), flush=True)
        while not stopping.is_set():
            exited = {name: code for name, code in stack.running().items() if code is not None}
            if exited:
                print(f"A process exited unexpectedly: {exited}. Stopping everything.", flush=True)
                return 1
            stopping.wait(0.5)
        return 0
    finally:
        print("\nStopping...", flush=True)
        stack.stop_all()
        print("Stopped.", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.stack", description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    args = parser.parse_args(argv)
    return run(StackConfig(data_dir=args.data_dir))


if __name__ == "__main__":
    raise SystemExit(main())
