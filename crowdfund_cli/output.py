"""What the user sees: rich tables on a terminal (colour off when piped or NO_COLOR), JSON with --json."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from crowdfund_cli.api import ApiError

PIPE_WIDTH = 200

out = Console()
err = Console(stderr=True)
# In a pipe rich assumes 80 columns and would cut ids short; scripts read whole lines, so allow long ones.
for _console in (out, err):
    if not _console.is_terminal and "COLUMNS" not in os.environ:
        _console.width = PIPE_WIDTH


class Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def emit(self, data: Any, render: Callable[[Any], None]) -> None:
        if self.as_json:
            sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        else:
            render(data)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    grid = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")  # a narrow terminal wraps an id, never cuts it
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    out.print(grid)


def fields(title: str | None, pairs: Sequence[tuple[str, Any]]) -> None:
    grid = Table(title=title, show_header=False, box=None, pad_edge=False)
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in pairs:
        grid.add_row(key, "" if value is None else str(value))
    out.print(grid)


def problem(error: ApiError, as_json: bool) -> None:
    if as_json:
        sys.stderr.write(json.dumps({"error": error.problem}, indent=2) + "\n")
        return
    p = error.problem
    code = p.get("code", "error")
    err.print(f"[bold red]Error {error.status}[/] [dim]({code})[/]: {p.get('detail') or p.get('title')}")
    for item in p.get("errors") or []:
        location = ".".join(str(part) for part in item.get("loc", []))
        err.print(f"  - {location}: {item.get('msg')}")
    for key in ("missing", "missing_items"):
        for item in p.get(key) or []:
            err.print(f"  - {item}")
