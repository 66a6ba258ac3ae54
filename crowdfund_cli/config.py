"""Where the gateway is and who we are: flags, then environment, then the config file."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_GATEWAY = "http://127.0.0.1:8000"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "crowdfund" / "config.toml"


@dataclass(frozen=True)
class Config:
    gateway_url: str
    token: str | None
    timeout_seconds: float = 30.0
    stream_read_timeout_seconds: float = 45.0  # three of the server's 15 s keep-alive pings


def load(gateway_url: str | None = None, token: str | None = None) -> Config:
    stored: dict[str, str] = {}
    path = config_path()
    if path.is_file():
        stored = {k: str(v) for k, v in tomllib.loads(path.read_text()).items()}
    return Config(
        gateway_url=(
            gateway_url or os.environ.get("CROWDFUND_GATEWAY_URL") or stored.get("gateway_url") or DEFAULT_GATEWAY
        ).rstrip("/"),
        token=token or os.environ.get("CROWDFUND_TOKEN") or stored.get("token"),
    )


def save(gateway_url: str, token: str | None) -> Path:
    """Write the config file readable by its owner only (it holds a bearer token)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f'gateway_url = "{gateway_url}"']
    if token:
        lines.append(f'token = "{token}"')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return path
