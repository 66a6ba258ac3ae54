"""Measure requests/s of the real server process.

    python -m stripe_local.bench                      # starts its own server on a temp database
    python -m stripe_local.bench --url http://127.0.0.1:12111 --seconds 10 --connections 64

The load generator speaks HTTP/1.1 over raw asyncio streams with keep-alive, sending exactly
what the SDK sends (form body, bearer key, an Idempotency-Key on every POST), so the client is
as cheap as possible and the figure is the server's. ``--sdk`` also measures through the
official SDK (``StripeClient`` + ``HTTPXClient``), which is client-bound.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson

from .testing import StripeLocalProcess

AUTH = b"Authorization: Bearer sk_test_bench\r\n"


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    # Server CPU seconds spent during the phase, when the bench started the server itself.
    server_cpu: float | None = None

    def line(self) -> str:
        lat = sorted(self.latencies) or [0.0]
        p50 = lat[len(lat) // 2] * 1000
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
        rps = self.requests / self.seconds if self.seconds else 0.0
        line = f"{self.name:<44} {rps:>6.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
        if self.server_cpu:
            # Requests per second of server CPU: what one free core sustains, whatever else the machine runs.
            line += f"  {self.requests / self.server_cpu:>6.0f} req/CPU-s"
        return line + f"  ({self.requests} requests, {self.errors} errors)"


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc), to measure the server apart from its client."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: bytes) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), b"Host: ", self.host, b"\r\n", AUTH]
        if method == "POST":
            head.append(f"Idempotency-Key: {uuid.uuid4()}\r\n".encode())
            head.append(b"Content-Type: application/x-www-form-urlencoded\r\n")
        head.append(f"Content-Length: {len(body)}\r\n\r\n".encode())
        self.writer.write(b"".join(head) + body)
        status_line = await self.reader.readuntil(b"\r\n")
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:].strip())
        payload = await self.reader.readexactly(length)
        return int(status_line.split(b" ", 2)[1]), payload


RequestMaker = Callable[[int], tuple[str, str, bytes]]
SERVER_PID: int | None = None  # set when the bench runs its own server


async def run_phase(
    url: str,
    name: str,
    make: RequestMaker,
    *,
    connections: int,
    seconds: float | None,
    count: int | None,
    collect: list[bytes] | None = None,
) -> Result:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conns = [
        Connection(*await asyncio.open_connection(host, port), f"{host}:{port}".encode()) for _ in range(connections)
    ]
    result = Result(name, 0, 0.0)
    cpu_before = process_cpu_seconds(SERVER_PID) if SERVER_PID else None
    counter = iter(range(10**12))
    started = time.perf_counter()
    deadline = started + seconds if seconds else None

    async def worker(conn: Connection) -> None:
        while True:
            i = next(counter)
            if (count is not None and i >= count) or (deadline is not None and time.perf_counter() > deadline):
                return
            method, path, body = make(i)
            t0 = time.perf_counter()
            status, payload = await conn.request(method, path, body)
            result.latencies.append(time.perf_counter() - t0)
            result.requests += 1
            if status != 200:
                result.errors += 1
            elif collect is not None:
                collect.append(payload)

    await asyncio.gather(*(worker(c) for c in conns))
    result.seconds = time.perf_counter() - started
    if cpu_before is not None and SERVER_PID:
        result.server_cpu = process_cpu_seconds(SERVER_PID) - cpu_before
    for conn in conns:
        conn.writer.close()
    return result


async def run_raw(url: str, seconds: float, connections: int) -> list[Result]:
    setup = Connection(*await asyncio.open_connection(urlsplit(url).hostname, urlsplit(url).port), b"bench")
    _, customer = await setup.request("POST", "/v1/customers", b"email=bench%40example.com")
    customer_id = orjson.loads(customer)["id"]
    _, pm = await setup.request("POST", "/v1/payment_methods", b"type=card&card[token]=tok_visa")
    pm_id = orjson.loads(pm)["id"]
    await setup.request("POST", f"/v1/payment_methods/{pm_id}/attach", f"customer={customer_id}".encode())
    setup.writer.close()

    results = [
        await run_phase(
            url,
            "POST /v1/customers",
            lambda i: ("POST", "/v1/customers", f"email=b{i}%40example.com&metadata[n]={i}".encode()),
            connections=connections,
            seconds=seconds,
            count=None,
        )
    ]
    intents: list[bytes] = []
    confirm = (
        f"amount=5000&currency=usd&customer={customer_id}&payment_method={pm_id}&confirm=true"
        "&off_session=true&metadata[pledge_id]="
    ).encode()
    results.append(
        await run_phase(
            url,
            "POST /v1/payment_intents (create+confirm)",
            lambda i: ("POST", "/v1/payment_intents", confirm + str(i).encode()),
            connections=connections,
            seconds=seconds,
            count=None,
            collect=intents,
        )
    )
    ids = [orjson.loads(p)["id"] for p in intents]
    results.append(
        await run_phase(
            url,
            "POST /v1/refunds (partial)",
            lambda i: (
                "POST",
                "/v1/refunds",
                f"payment_intent={ids[i % len(ids)]}&amount=1&reason=requested_by_customer".encode(),
            ),
            connections=connections,
            seconds=seconds,
            count=None,
        )
    )
    results.append(
        await run_phase(
            url,
            "GET /v1/payment_intents/{id}",
            lambda i: ("GET", f"/v1/payment_intents/{ids[i % len(ids)]}", b""),
            connections=connections,
            seconds=seconds,
            count=None,
        )
    )
    return results


async def run_sdk(url: str, seconds: float, concurrency: int) -> Result:
    import stripe

    http_client = stripe.HTTPXClient()
    client = stripe.StripeClient(
        "sk_test_bench", base_addresses={"api": url}, http_client=http_client, max_network_retries=2
    )
    result = Result("SDK payment_intents.create_async (confirm)", 0, 0.0)
    deadline = time.perf_counter() + seconds
    started = time.perf_counter()

    async def worker() -> None:
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            await client.v1.payment_intents.create_async(
                params={
                    "amount": 5000,
                    "currency": "usd",
                    "payment_method": "pm_card_visa",
                    "confirm": True,
                    "allowed_payment_method_types": ["card"],
                },
                options={"idempotency_key": f"bench:{uuid.uuid4()}"},
            )
            result.latencies.append(time.perf_counter() - t0)
            result.requests += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    await http_client._client_async.aclose()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_local.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="an already running server (default: start one)")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each phase")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--sdk", action="store_true", help="also measure through the official SDK")
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    global SERVER_PID
    server = None if args.url else StripeLocalProcess().start()
    url = args.url or (server.url if server else "")
    if server is not None and server.process is not None and os.path.exists(f"/proc/{server.process.pid}/stat"):
        SERVER_PID = server.process.pid
    try:
        results = asyncio.run(run_raw(url, args.seconds, args.connections))
        if args.sdk:
            results.append(asyncio.run(run_sdk(url, args.seconds, args.connections)))
    finally:
        if server is not None:
            server.stop()
    print(f"stripe_local at {url}, {args.connections} keep-alive connections, {args.seconds:.0f}s per phase")
    for result in results:
        print(result.line())
    total = [r.requests / r.seconds for r in results if r.seconds]
    print(f"median across phases: {statistics.median(total):.0f} req/s")


if __name__ == "__main__":
    main()
