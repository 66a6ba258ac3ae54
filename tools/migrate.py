"""Migrate services' databases to the latest revision: ``python -m tools.migrate [campaigns pledges refunds]``.

Each service reads its URL from its own settings (``CAMPAIGNS_DATABASE_URL`` ...). Deployments run this
before a new version serves (the migration Job / compose step). ``--wait SECONDS`` migrates nothing: it waits
until the database is at this code's head revision (a pod's init container, while the Job migrates)."""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

from shared.migrations import is_at_head, upgrade

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("campaigns", "pledges", "refunds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.migrate", description=__doc__)
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)} (default: all)")
    parser.add_argument("--wait", type=float, metavar="SECONDS", help="only wait until the schema is at head")
    args = parser.parse_args(argv)
    unknown = set(args.services) - set(SERVICES)
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    for service in args.services or SERVICES:
        settings = importlib.import_module(f"services.{service}.config").Settings()
        if args.wait is not None:
            deadline = time.monotonic() + args.wait
            while not is_at_head(ROOT / "services" / service, settings.database_url):
                if time.monotonic() > deadline:
                    print(f"{service}: database not at the head revision after {args.wait}s")
                    return 1
                time.sleep(2)
            print(f"{service}: at head")
            continue
        if settings.database_url.startswith("sqlite"):
            Path("data").mkdir(exist_ok=True)
        upgrade(ROOT / "services" / service, settings.database_url)
        print(f"{service}: migrated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
