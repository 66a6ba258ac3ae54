"""Optimistic concurrency for edits: the ``ETag`` of a campaign or tier is its revision in quotes, and an edit
must send it back in ``If-Match``; a stale value is 412."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header

from services.campaigns.campaigns.exceptions import RevisionMismatch

IfMatch = Annotated[
    str,
    Header(
        alias="If-Match",
        description='The `ETag` you last read (e.g. `"3"`), or `*` to overwrite whatever is current. '
        "A stale value is answered with 412 `revision_mismatch`.",
    ),
]


def etag(revision: int) -> str:
    return f'"{revision}"'


def check_if_match(if_match: str, current_revision: int) -> None:
    candidates = [part.strip() for part in if_match.split(",")]
    for candidate in candidates:
        if candidate == "*":
            return
        value = candidate.removeprefix("W/").strip('"')
        if value == str(current_revision):
            return
    raise RevisionMismatch(current_revision)
