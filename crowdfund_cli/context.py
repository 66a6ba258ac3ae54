"""What every command shares: the API client and the output mode (set by the top-level options), and the exit
codes. A module of its own so command modules do not import ``main`` (run as ``python -m crowdfund_cli.main``,
that would be a second copy of it, with its own state)."""

from __future__ import annotations

from crowdfund_cli.api import Api
from crowdfund_cli.output import Output


class State:
    api: Api
    output: Output


state = State()

EXIT_AUTH, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_UNAVAILABLE = 3, 4, 5, 6
# `refunds watch`: how the batch ended.
EXIT_BATCH_FAILED_ITEMS, EXIT_BATCH_CANCELED = 7, 8


def exit_code_for(status: int) -> int:
    if status in (401, 403):
        return EXIT_AUTH
    if status == 404:
        return EXIT_NOT_FOUND
    if status == 429 or status >= 500:
        return EXIT_UNAVAILABLE
    return EXIT_REFUSED
