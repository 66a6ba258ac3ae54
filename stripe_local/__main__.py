"""``python -m stripe_local --host 127.0.0.1 --port 12111 --db data/stripe_local.sqlite3``"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from .app import create_app
from .config import Settings


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="python -m stripe_local", description=__doc__)
    parser.add_argument("--host", help="bind address (STRIPE_LOCAL_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (STRIPE_LOCAL_PORT, default 12111)")
    parser.add_argument("--db", help="SQLite file (STRIPE_LOCAL_DB, default data/stripe_local.sqlite3)")
    parser.add_argument("--rate-limit", type=float, help="requests/s per endpoint, 0 disables (default 25)")
    parser.add_argument(
        "--async-delay",
        type=float,
        dest="async_delay_seconds",
        help="seconds before asynchronous refund transitions (default 1)",
    )
    parser.add_argument("--seed", type=int, help="seed for fault injection and webhook duplicates")
    parser.add_argument("--log-level", help="debug, info, warning (default), error")
    args = vars(parser.parse_args(argv))
    return Settings.from_env(**args)


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        # Per-request work uvicorn would otherwise do for nothing here.
        proxy_headers=False,
        server_header=False,
        date_header=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=5,
        # Longer than the SDK clients' idle pools, so a client never reuses a connection the server is closing.
        timeout_keep_alive=65,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
