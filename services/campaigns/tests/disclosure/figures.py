"""Finding numbers in a response body, for "no hidden figure appears anywhere" assertions."""

from __future__ import annotations

import re

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I)
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?")
_HASH = re.compile(r"\b[0-9a-f]{64}\b")
# The test actors' ids (``creator-a65870bc``): their random hex can hold a run of digits equal to a figure.
_ACTOR_ID = re.compile(r"\b(?:creator|operator|backer)-[0-9a-f]{6,8}\b")
_NUMBER = re.compile(r"\d+")


def numbers_in(text: str) -> set[int]:
    """Every integer written in ``text``, ignoring ids (UUIDs, the test actors'), timestamps and content hashes."""
    for pattern in (_UUID, _ACTOR_ID, _TIMESTAMP, _HASH):
        text = pattern.sub(" ", text)
    return {int(match) for match in _NUMBER.findall(text)}
