"""Parameter schemas and validation with Stripe's messages.

Stripe rejects unknown parameters (``parameter_unknown``), malformed integers
(``parameter_invalid_integer``) and missing required ones (``parameter_missing``) before an
endpoint runs; such errors are never saved for idempotent replay. The messages below are the
ones recorded from the real API (cassette 09_error_envelope_400s of stripe_world).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import StripeError

_INT = re.compile(r"^-?\d+$")


def _err(message: str, path: str, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=path, code=code)


class Spec:
    def __init__(self, *, required: bool = False) -> None:
        self.required = required

    def coerce(self, value: Any, path: str) -> Any:
        raise NotImplementedError


class Str(Spec):
    def __init__(self, *, required: bool = False, max_length: int = 5000) -> None:
        super().__init__(required=required)
        self.max_length = max_length

    def coerce(self, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise _err(f"Invalid string: {_ruby(value)}", path)
        if len(value) > self.max_length:
            raise _err(
                f"Invalid string: {value[:20]}...; must be at most {self.max_length} characters",
                path,
            )
        return value


class Int(Spec):
    def coerce(self, value: Any, path: str) -> Any:
        if not isinstance(value, str) or not _INT.match(value):
            raise _err(f"Invalid integer: {_ruby(value)}", path, "parameter_invalid_integer")
        return int(value)


class Bool(Spec):
    def coerce(self, value: Any, path: str) -> Any:
        if value in ("true", "True"):
            return True
        if value in ("false", "False"):
            return False
        raise _err(f"Invalid boolean: {_ruby(value)}", path)


class Enum(Spec):
    def __init__(self, *choices: str, required: bool = False) -> None:
        super().__init__(required=required)
        self.choices = choices

    def coerce(self, value: Any, path: str) -> Any:
        if value not in self.choices:
            raise _err(f"Invalid {path}: must be one of {_one_of(self.choices)}", path)
        return value


class BoolOrEnum(Spec):
    """``off_session`` takes ``true``/``false`` or ``one_off``/``recurring``."""

    def __init__(self, *choices: str) -> None:
        super().__init__()
        self.choices = choices

    def coerce(self, value: Any, path: str) -> Any:
        if value in self.choices:
            return value
        return Bool().coerce(value, path)


class Obj(Spec):
    """A hash. An empty string unsets it (returns ``None``), as Stripe documents."""

    def __init__(self, fields: Mapping[str, Spec], *, required: bool = False) -> None:
        super().__init__(required=required)
        self.fields = fields

    def coerce(self, value: Any, path: str) -> Any:
        if value == "":
            return None
        if not isinstance(value, dict):
            raise _err("Invalid hash", path)
        return validate(self.fields, value, path)


class Meta(Spec):
    """Metadata: a hash of strings; ``""`` clears it; a key set to ``""`` is deleted on update."""

    def coerce(self, value: Any, path: str) -> Any:
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise _err("Invalid hash", path)
        out: dict[str, str] = {}
        for key, item in value.items():
            sub = f"{path}[{key}]"
            if not isinstance(item, str):
                raise _err(f"Invalid string: {_ruby(item)}", sub)
            if len(key) > 40:
                raise _err(f"Metadata keys can have up to 40 characters; key '{key}' is too long.", sub)
            if len(item) > 500:
                raise _err(
                    "Metadata values can have up to 500 characters, but you passed in a value that is "
                    f"{len(item)} characters.",
                    sub,
                )
            out[key] = item
        if len(out) > 50:
            raise _err("Metadata can have up to 50 keys.", path)
        return out


class Arr(Spec):
    def __init__(self, item: Spec, *, required: bool = False) -> None:
        super().__init__(required=required)
        self.item = item

    def coerce(self, value: Any, path: str) -> Any:
        if value == "":
            return []
        if not isinstance(value, dict) or not all(k.isdigit() for k in value):
            raise _err("Invalid array", path)
        items = sorted(value.items(), key=lambda kv: int(kv[0]))
        return [self.item.coerce(v, f"{path}[{k}]") for k, v in items]


class IntOrRange(Spec):
    """List filters such as ``created`` take an integer or ``{gt, gte, lt, lte}``."""

    def coerce(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return validate({k: Int() for k in ("gt", "gte", "lt", "lte")}, value, path)
        return {"eq": Int().coerce(value, path)}


def validate(fields: Mapping[str, Spec], raw: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{prefix}[{key}]" if prefix else key
        spec = fields.get(key)
        if spec is None:
            raise StripeError(400, f"Received unknown parameter: {path}", param=path, code="parameter_unknown")
        out[key] = spec.coerce(value, path)
    for key, spec in fields.items():
        if spec.required and out.get(key) in (None, ""):
            path = f"{prefix}[{key}]" if prefix else key
            raise StripeError(400, f"Missing required param: {path}.", param=path, code="parameter_missing")
    return out


def _one_of(choices: tuple[str, ...]) -> str:
    if len(choices) == 1:
        return choices[0]
    if len(choices) == 2:
        return f"{choices[0]} or {choices[1]}"
    return ", ".join(choices[:-1]) + f", or {choices[-1]}"


def _ruby(value: Any) -> str:
    """Stripe echoes bad values in Ruby's inspect style; strings are echoed bare."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        inner = ", ".join(f':{k}=>"{v}"' if isinstance(v, str) else f":{k}=>{_ruby(v)}" for k, v in value.items())
        return "{" + inner + "}"
    return str(value)


# Shared fragments -------------------------------------------------------------------------

EXPAND = Arr(Str())
LIST_PARAMS: dict[str, Spec] = {
    "limit": Int(),
    "starting_after": Str(),
    "ending_before": Str(),
    "expand": EXPAND,
}
ADDRESS = Obj({k: Str() for k in ("city", "country", "line1", "line2", "postal_code", "state")})
