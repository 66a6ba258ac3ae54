"""Stripe-like rate limiting and configurable fault injection, so retry paths are tested for real."""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import Settings

FAULT_KINDS = ("500", "429", "drop")


class RateLimiter:
    """A token bucket per endpoint (method + route), refilled at ``rate`` per second with a burst of
    ``rate`` requests - Stripe's test mode allows 25 requests per second."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}
        self.rejected = 0

    def configure(self, rate: float) -> None:
        self.rate = rate
        self._buckets.clear()

    def allow(self, key: str) -> bool:
        rate = self.rate
        if rate <= 0:
            return True
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (rate, now))
        tokens = min(rate, tokens + (now - last) * rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            self.rejected += 1
            return False
        self._buckets[key] = (tokens - 1, now)
        return True


@dataclass
class FaultConfig:
    # Fraction of /v1 requests that fail, split between the kinds by ``mix`` weights.
    error_rate: float = 0.0
    mix: dict[str, float] = field(default_factory=lambda: {"500": 1.0})
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    # Stop injecting after this many faults (None: never stop) - lets a client's retries succeed.
    max_faults: int | None = None
    methods: list[str] | None = None
    path_prefix: str | None = None

    def validate(self) -> None:
        if not 0 <= self.error_rate <= 1:
            raise ValueError("error_rate must be between 0 and 1")
        unknown = set(self.mix) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; use {FAULT_KINDS}")
        if self.mix and sum(self.mix.values()) <= 0:
            raise ValueError("mix weights must add up to more than 0")


class FaultInjector:
    def __init__(self, settings: Settings, rng: random.Random) -> None:
        self._rng = rng
        self.config = FaultConfig(
            error_rate=settings.fault_rate, mix=dict(settings.fault_mix), latency_ms=settings.latency_ms
        )
        self.config.validate()
        self.counts: Counter[str] = Counter()

    def configure(self, values: dict[str, Any]) -> FaultConfig:
        config = FaultConfig(**values)
        config.validate()
        self.config = config
        return config

    def describe(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "injected": dict(self.counts)}

    def _applies(self, method: str, path: str) -> bool:
        config = self.config
        if config.methods and method not in config.methods:
            return False
        return not (config.path_prefix and not path.startswith(config.path_prefix))

    def decide(self, method: str, path: str) -> str | None:
        config = self.config
        if config.error_rate <= 0 or not self._applies(method, path):
            return None
        if config.max_faults is not None and sum(self.counts[k] for k in FAULT_KINDS) >= config.max_faults:
            return None
        if self._rng.random() >= config.error_rate:
            return None
        kinds = [k for k in FAULT_KINDS if config.mix.get(k, 0) > 0]
        kind = self._rng.choices(kinds, weights=[config.mix[k] for k in kinds])[0]
        self.counts[kind] += 1
        return kind

    def latency(self, method: str, path: str) -> float:
        config = self.config
        if (config.latency_ms <= 0 and config.jitter_ms <= 0) or not self._applies(method, path):
            return 0.0
        return max(0.0, config.latency_ms + self._rng.uniform(0, config.jitter_ms)) / 1000
