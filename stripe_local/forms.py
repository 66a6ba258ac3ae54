"""Stripe's form encoding: ``metadata[k]=v``, ``expand[0]=x``, ``expand[]=x``, ``card[token]=t``.

Everything is parsed into nested dicts of strings; arrays stay dicts keyed by index until the
parameter schema (params.py) says the parameter is an array. Deciding there, not here, keeps
numeric metadata keys (``metadata[123]=x``) intact.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

_BRACKETS = re.compile(r"\[([^\[\]]*)\]")

FormValue = str | dict[str, Any]


def _split_key(key: str) -> list[str]:
    base, sep, rest = key.partition("[")
    if not sep:
        return [key]
    rest = "[" + rest
    parts = _BRACKETS.findall(rest)
    # A malformed key (``a[b``) is kept literally rather than guessed at.
    if "".join(f"[{p}]" for p in parts) != rest:
        return [key]
    return [base, *parts]


def _next_index(node: dict[str, Any]) -> str:
    return str(len(node))


def parse_form(raw: str | bytes) -> dict[str, Any]:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    root: dict[str, Any] = {}
    if not text:
        return root
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = _split_key(key)
        node = root
        for part in parts[:-1]:
            name = part if part != "" else _next_index(node)
            child = node.get(name)
            if not isinstance(child, dict):
                child = {}
                node[name] = child
            node = child
        last = parts[-1] if parts[-1] != "" else _next_index(node)
        node[last] = value
    return root
