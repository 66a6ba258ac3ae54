"""Fast JSON encoding used by responses, logs and stored payloads (orjson; UUIDs and datetimes native)."""

from __future__ import annotations

from typing import Any

import orjson


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def dumps_text(value: Any) -> str:
    """What SQLAlchemy's JSON columns store (``shared.db.create_engine``), as text. Non-string keys become
    strings, as the json module the columns used before made them (orjson refuses them by default)."""
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
