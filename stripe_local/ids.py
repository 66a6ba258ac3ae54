"""Identifiers shaped like Stripe's (``pi_3Ab...`` with 24 characters after the prefix)."""

from __future__ import annotations

import hashlib
import random
import string

_ALNUM = string.ascii_letters + string.digits
# Uniqueness is what matters here, not secrecy: a PRNG seeded from the OS is plenty and fast.
_rng = random.Random()
# Random bytes mapped onto [A-Za-z0-9] in one C call (the 256 % 62 bias is irrelevant for ids).
_TO_ALNUM = bytes(ord(_ALNUM[i % 62]) for i in range(256))


_UPPER = string.ascii_uppercase + string.digits
_TO_UPPER = bytes(ord(_UPPER[i % 36]) for i in range(256))


def token(length: int) -> str:
    return _rng.randbytes(length).translate(_TO_ALNUM).decode("ascii")


def upper_token(length: int) -> str:
    """Upper-case letters and digits, as in a customer's ``invoice_prefix``."""
    return _rng.randbytes(length).translate(_TO_UPPER).decode("ascii")


def new_id(prefix: str, lead: str = "1", length: int = 24) -> str:
    """Stripe ids for charge-backed objects start with ``3`` (pi_3, ch_3, re_3), others with ``1``."""
    return f"{prefix}_{lead}{token(length - 1)}"


def customer_id() -> str:
    return f"cus_{token(14)}"


def request_id() -> str:
    return f"req_{token(14)}"


def digits(length: int) -> str:
    return "".join(_rng.choices(string.digits, k=length))


def stable_token(seed: str, length: int) -> str:
    """A deterministic base62 token (card fingerprints, env-configured endpoint ids)."""
    value = int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big")
    out = []
    for _ in range(length):
        value, rem = divmod(value, 62)
        out.append(_ALNUM[rem])
    return "".join(out)
