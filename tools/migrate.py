"""Migrate services' databases to the latest revision: ``python -m tools.migrate [campaigns pledges refunds]``.

Each service reads its URL from its own settings (``CAMPAIGNS_DATABASE_URL`` ...). Deployments run this
before a new version serves (the migration Job / compose step)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from shared.migrations import upgrade

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("campaigns", "pledges", "refunds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.migrate", description=__doc__)
    parser.add_argument("services", nargs="*", metavar="SERVICE", help=f"any of {', '.join(SERVICES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.services) - set(SERVICES)
    if unknown:
        parser.error(f"unknown service(s): {', '.join(sorted(unknown))}")
    for service in args.services or SERVICES:
        settings = importlib.import_module(f"services.{service}.config").Settings()
        if settings.database_url.startswith("sqlite"):
            Path("data").mkdir(exist_ok=True)
        upgrade(ROOT / "services" / service, settings.database_url)
        print(f"{service}: migrated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
