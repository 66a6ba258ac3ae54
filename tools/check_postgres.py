"""Exit 0 if the PostgreSQL server used by the test suite answers, 1 with a clear message otherwise."""

from __future__ import annotations

import asyncio
import sys

import asyncpg

from shared.testing import POSTGRES_ADMIN_DSN


async def _check() -> str:
    conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=10)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def main() -> int:
    try:
        version = asyncio.run(_check())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(f"PostgreSQL unreachable at {POSTGRES_ADMIN_DSN}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"PostgreSQL {version} at {POSTGRES_ADMIN_DSN}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
