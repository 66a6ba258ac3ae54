"""Settings: defaults, overridden by ``STRIPE_LOCAL_*`` environment variables, overridden by CLI flags."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

ENV_PREFIX = "STRIPE_LOCAL_"


def _parse_mix(text: str) -> dict[str, float]:
    """``"500=0.5,429=0.3,drop=0.2"`` or a JSON object."""
    text = text.strip()
    if text.startswith("{"):
        return {str(k): float(v) for k, v in json.loads(text).items()}
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, weight = part.partition("=")
        mix[kind.strip()] = float(weight or 1)
    return mix


def _parse_bool(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 12111
    db: str = "data/stripe_local.sqlite3"
    log_level: str = "warning"
    # Stripe's test-mode limit is 25 requests/s; 0 disables the limiter (benchmarks).
    rate_limit: float = 25.0
    # Delay before asynchronous transitions (refund pending -> succeeded, succeeded -> failed).
    async_delay_seconds: float = 1.0
    webhook_endpoints: list[dict[str, Any]] = field(default_factory=list)
    webhook_duplicate_rate: float = 0.0
    webhook_reorder: bool = False
    # With reorder on, deliveries are held this long and then sent newest first.
    webhook_reorder_window_seconds: float = 0.5
    webhook_timeout_seconds: float = 5.0
    webhook_retry_base_seconds: float = 1.0
    webhook_retry_max_seconds: float = 300.0
    webhook_max_attempts: int = 8
    fault_rate: float = 0.0
    fault_mix: dict[str, float] = field(default_factory=lambda: {"500": 1.0})
    latency_ms: float = 0.0
    seed: int | None = None
    idempotency_ttl_seconds: int = 24 * 3600
    # off (default): safe against a killed process; normal/full: also against an OS crash (slower).
    sqlite_synchronous: str = "off"

    _ENV_PARSERS: ClassVar[dict[str, Any]] = {
        "host": str,
        "port": int,
        "db": str,
        "log_level": str,
        "rate_limit": float,
        "async_delay_seconds": float,
        "webhook_endpoints": json.loads,
        "webhook_duplicate_rate": float,
        "webhook_reorder": _parse_bool,
        "webhook_reorder_window_seconds": float,
        "webhook_timeout_seconds": float,
        "webhook_retry_base_seconds": float,
        "webhook_retry_max_seconds": float,
        "webhook_max_attempts": int,
        "fault_rate": float,
        "fault_mix": _parse_mix,
        "latency_ms": float,
        "seed": int,
        "idempotency_ttl_seconds": int,
        "sqlite_synchronous": str,
    }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, parser in cls._ENV_PARSERS.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is not None and raw != "":
                values[name] = parser(raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        for endpoint in self.webhook_endpoints:
            if not isinstance(endpoint, dict) or "url" not in endpoint:
                raise ValueError("STRIPE_LOCAL_WEBHOOK_ENDPOINTS must be a JSON list of {url, secret, enabled_events}")
        if not 0 <= self.webhook_duplicate_rate <= 1 or not 0 <= self.fault_rate <= 1:
            raise ValueError("rates must be between 0 and 1")
