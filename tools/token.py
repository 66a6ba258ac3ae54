"""Print a development JWT: ``make token ROLE=operator SUB=alice`` (HS256 with the development secret)."""

from __future__ import annotations

import argparse

from shared.auth import Role
from tools.stack import dev_token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make token", description=__doc__)
    parser.add_argument("--role", action="append", choices=[r.value for r in Role if r is not Role.SERVICE])
    parser.add_argument("--sub", default="dev-user", help="the token's subject (user id)")
    parser.add_argument("--ttl", type=int, default=12 * 3600, help="lifetime in seconds")
    args = parser.parse_args(argv)
    print(dev_token(args.sub, *(args.role or ["backer"]), ttl_seconds=args.ttl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
