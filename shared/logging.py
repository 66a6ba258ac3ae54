"""Structured JSON logs (structlog) with the request id; secrets, tokens and card data are redacted."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import orjson
import structlog

_SENSITIVE_KEY = re.compile(
    r"(authorization|token|secret|password|passwd|api_?key|card|cvc|cvv|pan|number|signature|cookie)", re.I
)
_SENSITIVE_VALUE = re.compile(
    r"(eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # a JWT
    r"|\b(?:sk|rk|whsec)_[A-Za-z0-9_]+"  # Stripe secret keys, webhook secrets
    r"|\b\d{13,19}\b)"  # a card number
)
REDACTED = "[redacted]"


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _SENSITIVE_VALUE.sub(REDACTED, value)
    if isinstance(value, dict):
        return {k: REDACTED if _SENSITIVE_KEY.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def redact(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Last line of defence: a key that names a secret is blanked, a value that looks like one is masked."""
    return {
        k: (REDACTED if k not in ("event", "request_id") and _SENSITIVE_KEY.search(k) else _scrub(v))
        for k, v in event_dict.items()
    }


def configure_logging(level: str = "INFO", *, json: bool = True, component: str | None = None) -> None:
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    if component:
        processors.insert(0, _add_component(component))
    if json:
        processors.append(structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode()))
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.WriteLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )


def _add_component(component: str) -> Any:
    def processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        event_dict.setdefault("component", component)
        return event_dict

    return processor
