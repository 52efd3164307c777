"""Rich renderables that fit the terminal without cutting: numbers keep every digit, and a table too wide
for the width it is printed in takes another layout instead of losing columns."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

Layout = Callable[[], RenderableType]


def cell_width(cell: RenderableType) -> int:
    """The width of a table cell written as markup or Text (what vitcli's tables hold)."""
    if isinstance(cell, Text):
        return max((line.cell_len for line in cell.split()), default=0)
    return Text.from_markup(str(cell)).cell_len


def keep_whole(table: Table, *columns: int) -> Table:
    """Each of these columns (by index; all by default) at least as wide as its header and widest cell
    so far: rich then narrows, wraps or folds the other columns, never cuts these numbers."""
    for index in columns or range(len(table.columns)):
        column = table.columns[index]
        column.min_width = max(cell_width(c) for c in [column.header, *column.cells])
    return table


class FirstThatFits:
    """Renders the first of `layouts` (called only when tried) whose narrowest rendering fits the width
    it is printed in, else the last one."""

    def __init__(self, *layouts: Layout):
        self.layouts = layouts

    def choose(self, console: Console, width: int) -> RenderableType:
        for layout in self.layouts:
            shown = layout()
            if min_width(console, shown) <= width:
                return shown
        return shown

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.choose(console, options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.choose(console, options.max_width))


def min_width(console: Console, renderable: RenderableType) -> int:
    """The fewest columns `renderable` takes without cutting a word (or a whole column, see keep_whole)."""
    unbounded = console.options.update_width(100_000)
    return Measurement.get(console, unbounded, renderable).minimum


def span_text(values: Iterable[int]) -> str:
    """`0-4` for consecutive integers, else `0,2,5`: a sweep's seeds in few columns."""
    values = sorted(values)
    if len(values) > 2 and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))
