"""Table and JSON output shared by every command.

Tables fit the terminal, or 80 columns when the output is not a terminal (a pipe, a file,
a test). Every column is first given its longest word, so ids stay whole (``openai`` and
``openrouter`` never read alike); what room is left goes to the columns whose cells would
otherwise wrap. Only when even the longest words cannot fit side by side is a word folded.
"""

from __future__ import annotations

import functools
import os
import sys
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import click
import orjson
from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

#: Width of output that is not a terminal, unless ``$COLUMNS`` says otherwise.
PIPE_WIDTH = 80
#: What an empty cell shows.
NONE = "-"
#: Characters between two columns: a space of padding on each side of a blank rule.
GAP = 3


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a table.

    :param header: its title.
    :param ratio: its weight when spare room is shared out (a description column wants
        more than an id column).
    :param whole: never wrapped at spaces, only folded as a last resort (dates, "a b"
        values that read wrong on two lines).
    """

    header: str
    ratio: int = 1
    whole: bool = False


def console() -> Console:
    """A console writing to click's stdout, as wide as the terminal, else 80 columns."""
    columns = os.environ.get("COLUMNS", "")
    stream = sys.stdout  # at call time: click's test runner swaps it
    width: int | None = None
    if columns.isdigit() and int(columns) > 0:
        width = int(columns)
    elif not stream.isatty():
        width = PIPE_WIDTH
    # no highlighting or markup: what a cell holds is what is printed
    return Console(file=stream, width=width, highlight=False, markup=False, emoji=False)


def cell(value: Any) -> str:
    """A value as table text: lists joined with commas, nothing as ``-``."""
    if value is None or value == [] or value == () or value == {}:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def fit(columns: Sequence[Column], rows: Sequence[Sequence[str]], room: int) -> list[int]:
    """Content widths for ``columns`` within ``room`` characters (gaps excluded).

    Each column starts at its longest word; the room left goes where it saves the most
    printed lines per character, then to the columns furthest from fitting on one line.
    """
    texts = [[column.header, *(row[i] for row in rows)] for i, column in enumerate(columns)]
    longest = [max(len(line) for t in col for line in t.splitlines() or [""]) for col in texts]
    widths = [
        longest[i]
        if column.whole
        else max((len(w) for t in texts[i] for w in t.split()), default=1)
        for i, column in enumerate(columns)
    ]
    while sum(widths) > room and max(widths) > 1:  # some word must fold: the widest first
        widths[widths.index(max(widths))] -= 1
    grid = [[column.header for column in columns], *rows]
    spare = room - sum(widths)
    height = _height(grid, widths)
    while spare > 0:
        # the widening that saves the most lines per character spent
        best: tuple[float, int, int, int] | None = None  # (lines per char, lines, chars, col)
        for i in range(len(columns)):
            for extra in range(1, min(spare, longest[i] - widths[i]) + 1):
                widths[i] += extra
                saved = height - _height(grid, widths)
                widths[i] -= extra
                if saved > 0:
                    if best is None or saved / extra > best[0]:
                        best = (saved / extra, saved, extra, i)
                    break
        if best is None:
            break
        widths[best[3]] += best[2]
        spare -= best[2]
        height -= best[1]
    while spare > 0:  # no line left to save: widen what is furthest from one line
        missing = [
            (longest[i] - widths[i]) / (longest[i] or 1) * c.ratio for i, c in enumerate(columns)
        ]
        if max(missing) <= 0:
            break
        widths[missing.index(max(missing))] += 1
        spare -= 1
    return widths


def _height(grid: Sequence[Sequence[str]], widths: Sequence[int]) -> int:
    return sum(
        max(_lines(text, width) for text, width in zip(row, widths, strict=True)) for row in grid
    )


@functools.lru_cache(maxsize=4096)
def _lines(text: str, width: int) -> int:
    """How many lines ``text`` takes in a column ``width`` wide (wrapped at spaces)."""
    return sum(
        max(1, len(textwrap.wrap(line, width, break_on_hyphens=False)))
        for line in text.splitlines() or [""]
    )


def print_table(columns: Sequence[Column], rows: Iterable[Sequence[Any]]) -> None:
    """Print ``rows`` under ``columns``, sized to fit the console."""
    out = console()
    texts = [[cell(value) for value in row] for row in rows]
    room = max(len(columns), out.width - GAP * (len(columns) - 1))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    for column, width in zip(columns, fit(columns, texts, room), strict=True):
        table.add_column(column.header, width=width, overflow="fold", no_wrap=column.whole)
    for row in texts:
        table.add_row(*row)
    out.print(table)


def print_record(fields: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
    """Print one record as ``name  value`` lines, values wrapping under themselves."""
    out = console()
    if title is not None:
        out.print(Text(title, style="bold"))
    table = Table(box=None, show_header=False, pad_edge=False, expand=False)
    table.add_column(no_wrap=True, style="bold" if title is None else None)
    table.add_column(overflow="fold")
    for name, value in fields:
        table.add_row(name, cell(value))
    out.print(Padding(table, (0, 0, 0, 2), expand=False) if title is not None else table)


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON (``--json``: for scripts)."""
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def warn(message: str) -> None:
    """A line for the person at the terminal, on stderr (so ``--json`` stays parseable)."""
    click.secho(message, err=True, fg="yellow")


def when(value: Any) -> str | None:
    """An ISO 8601 timestamp as ``YYYY-MM-DD HH:MM`` (UTC, as the server sends them)."""
    if not isinstance(value, str) or len(value) < 16 or value[10] != "T":
        return value if value is None else str(value)
    return f"{value[:10]} {value[11:16]}"


def print_warning(answer: dict[str, Any]) -> None:
    """The server's ``warning`` (fields it ignored...), if it gave one, on stderr."""
    if isinstance(answer.get("warning"), str):
        warn(f"warning: {answer['warning']}")


def print_done(answer: dict[str, Any], as_json: bool, message: str) -> None:
    """Say what a change did: ``message``, or the server's answer with ``--json``."""
    if as_json:
        print_json(answer)
        return
    click.echo(message)
    print_warning(answer)
