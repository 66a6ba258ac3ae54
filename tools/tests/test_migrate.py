from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.testing import DatabaseFactory
from tools.stack import ROOT


def _migrate(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAMPAIGNS_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "tools.migrate", "campaigns", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_wait_succeeds_only_once_the_database_is_at_head(database_factory: DatabaseFactory, tmp_path: Path) -> None:
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite3'}"
    waited = _migrate(empty, "--wait", "0")
    assert waited.returncode == 1
    assert "not at the head revision" in waited.stdout
    assert _migrate(empty).returncode == 0
    assert _migrate(empty, "--wait", "0").returncode == 0

    # A newer release migrated past this code's head (a rollback): the older pods must still start.
    import sqlite3

    with sqlite3.connect(tmp_path / "empty.sqlite3") as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    assert _migrate(empty, "--wait", "0").returncode == 0

    migrated = database_factory.fresh("campaigns", ROOT / "services" / "campaigns")
    try:
        assert _migrate(migrated, "--wait", "0").returncode == 0
    finally:
        database_factory.drop(migrated)
