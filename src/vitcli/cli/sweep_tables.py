"""A sweep's tables: its results grouped by the swept values (mean and spread over seeds where there are
several), and the runs a dry run plans. Each fits the terminal, stacking its columns when too wide."""

from __future__ import annotations

from rich import box
from rich.console import Group as RenderGroup
from rich.table import Table
from rich.text import Text

from vitcli.cli.fitting import FirstThatFits, keep_whole, span_text
from vitcli.cli.tables import fmt_bytes
from vitcli.sweeps.results import FINISHED, Group, fmt_value  # torch-free: rows and how they read


def fmt_mean_std(mean: float | None, std: float | None) -> str:
    """`95.50±0.71` (percent; the column header says so), or the mean alone for one run."""
    if mean is None:
        return "n/a"
    return f"{100 * mean:.2f}" if std is None else f"{100 * mean:.2f}±{100 * std:.2f}"


def sweep_table(groups: list[Group], axes: list[str], title: str) -> FirstThatFits:
    """One row per group of runs (the seeds of one setting), best test accuracy first and highlighted.

    Peak memory is shown for CUDA runs only: on the CPU vitcli can only read the process's peak, which
    in a sweep (one process) spans every run so far (results.jsonl still has it). The status column
    appears when some run failed. A column per swept option where that fits the terminal; else each
    row's setting in one column of words that wrap; else the settings and the numbers as two tables
    numbered alike. No number is ever cut.
    """
    columns = [a for a in axes if a != "seed"]
    seeds = any(len(g.seeds) > 1 for g in groups)
    cuda = any(str(g.device).startswith("cuda") for g in groups)
    failures = any(g.status != FINISHED for g in groups)
    names = (
        ["params", "tok", "val %", "test %", "train s", "img/s"] + ["peak mem"] * cuda + ["status"] * failures
    )
    rows = [_sweep_cells(g, cuda, failures) for g in groups]
    styles = [_group_style(i, g) for i, g in enumerate(groups)]
    values = [[fmt_value(g.values.get(a, "")) for a in columns] for g in groups]
    settings = [
        " ".join([*(f"{a}={v}" for a, v in zip(columns, vs)), *([f"seeds={span_text(g.seeds)}"] * seeds)])
        for g, vs in zip(groups, values)
    ]
    seed_cells = [[span_text(g.seeds)] * seeds for g in groups]
    caption = None
    if not cuda and any(g.finished for g in groups):
        caption = "peak memory: CUDA runs only (on the CPU only the whole process's peak is known)"

    def wide() -> Table:
        heads = [*columns, *["seeds"] * seeds, *names]
        return _sweep_layout(
            title, caption, heads, [[*v, *s, *c] for v, s, c in zip(values, seed_cells, rows)], styles
        )

    def stacked() -> Table:
        table = _sweep_layout(
            title, caption, ["setting", *names], [[t, *c] for t, c in zip(settings, rows)], styles
        )
        table.columns[0].no_wrap, table.columns[0].min_width = False, None
        return table

    def split() -> RenderGroup:  # the status, in words, goes with the setting
        numbered = [str(i) for i in range(1, len(groups) + 1)]
        kept = len(names) - failures
        named = _sweep_layout(
            title,
            None,
            ["#", "setting", *names[kept:]],
            [[n, t, *c[kept:]] for n, t, c in zip(numbered, settings, rows)],
            styles,
        )
        named.columns[1].no_wrap, named.columns[1].min_width = False, None
        numbers = [[n, *c[:kept]] for n, c in zip(numbered, rows)]
        return RenderGroup(named, _sweep_layout(None, caption, ["#", *names[:kept]], numbers, styles))

    return FirstThatFits(wide, stacked, split)


def _sweep_cells(g: Group, cuda: bool, failures: bool) -> list[str]:
    """A group's numbers (and status) as the sweep table shows them."""
    cells = [
        "n/a" if g.parameters is None else f"{g.parameters:,}",
        "n/a" if g.tokens is None else str(g.tokens),
        fmt_mean_std(g.val_accuracy, g.val_std),
        fmt_mean_std(g.test_accuracy, g.test_std),
        "n/a" if g.train_seconds is None else f"{g.train_seconds:.1f}",
        "n/a" if g.images_per_s is None else f"{g.images_per_s:,.0f}",
    ]
    if cuda:
        cells.append(fmt_bytes(g.peak_memory) if str(g.device).startswith("cuda") else "n/a")
    return cells + [g.status] * failures


def _group_style(i: int, g: Group) -> str | None:
    """The best setting in bold green; one whose runs all failed in red."""
    return "bold green" if i == 0 and g.test_accuracy is not None else ("red" if g.finished == 0 else None)


def _sweep_layout(title, caption, heads: list[str], rows: list[list[str]], styles) -> Table:
    """A sweep table in the compact style: no column rules, no edge padding; every column whole."""
    table = Table(
        title=title,
        caption=caption,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )
    for head in heads:
        table.add_column(head, justify="left" if head in ("setting", "status") else "right", no_wrap=True)
    for cells, style in zip(rows, styles):
        table.add_row(*cells, style=style)
    return keep_whole(table)


def planned_table(planned: list[dict], axes: list[str], title: str) -> FirstThatFits:
    """A dry run: each planned run's size, or why it cannot run (a reason that wraps); a column per
    swept option where that fits, else each run's setting as words that wrap."""
    numbers = [
        [
            str(p["index"]),
            "n/a" if p["parameters"] is None else f"{p['parameters']:,}",
            "n/a" if p["tokens"] is None else str(p["tokens"]),
        ]
        for p in planned
    ]
    values = [[fmt_value(p["values"][a]) for a in axes] for p in planned]
    plans = [
        Text(f"invalid: {p['error']}", style="red")
        if p["error"]
        else {"finished": "done, skipped", "failed": "retried"}.get(p["recorded"], "run")
        for p in planned
    ]

    def layout(heads: list[str], settings: list[list[str]]) -> Table:
        table = Table(title=title, title_justify="left")
        for head in ["#", *heads, "params", "tok"]:
            table.add_column(
                head, justify="left" if head == "setting" else "right", no_wrap=head != "setting"
            )
        table.add_column("plan", overflow="fold")
        for n, setting, plan in zip(numbers, settings, plans):
            table.add_row(n[0], *setting, *n[1:], plan)
        return keep_whole(table, *(i for i, c in enumerate(table.columns) if c.no_wrap))

    def stacked() -> Table:
        return layout(["setting"], [[" ".join(f"{a}={v}" for a, v in zip(axes, vs))] for vs in values])

    return FirstThatFits(lambda: layout(axes, values), stacked)
