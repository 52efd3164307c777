"""PNG charts of a sweep's results, with matplotlib's Agg backend (no display needed).

    accuracy.png   test accuracy against each swept option but the seed, a panel per option: the mean
                   over the runs at each value (over seeds, and over the other swept options' values)
                   with error bars of ± one standard deviation. A numeric option is on a numeric axis
                   (logarithmic where its values span a decade or more, as learning rates do); any
                   other (model, tokenizer, pool) is drawn as categories
    cost.png       train time, and peak GPU memory where it was measured, against tokens per image
                   (attention's cost grows with the square of the token count), or against parameters
                   where only those vary; left out when neither varies

matplotlib is imported only when a chart is drawn, so the CLI starts as fast without it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vitcli.runtime import png  # png.save looked up per call: tests watch what is drawn
from vitcli.settings.fields import flag
from vitcli.sweeps.results import FINISHED, fmt_value

MIN_SPAN = 100 * png.ACCURACY_SPAN  # points of accuracy (the chart's axis is in %) the y axis spans


@dataclass
class Point:
    """One value of a swept option: the mean test accuracy (%) of its runs and their standard deviation
    (0 for a single run)."""

    value: Any
    label: str
    mean: float
    std: float
    runs: int


@dataclass
class Panel:
    """What accuracy.png draws for one swept option."""

    option: str
    label: str  # the option's flag, e.g. --embed-dim
    categorical: bool  # categories on the x axis, not numbers
    log: bool  # a logarithmic x axis
    points: list[Point]


def write_charts(
    rows: list[dict[str, Any]], axes: list[str], out_dir: str | Path
) -> tuple[list[Path], list[str]]:
    """Write the charts for the finished rows; return the files written and why any chart was left out."""
    out_dir = Path(out_dir)
    done = [r for r in rows if r["status"] == FINISHED]
    written, notes = [], []
    if not done:
        return [], ["no finished runs to chart"]
    panels = accuracy_panels(done, axes)
    if panels:
        written.append(_accuracy_chart(panels, len(panels) > 1, out_dir / "accuracy.png"))
    elif axes:
        notes.append("only the seed was swept: no accuracy chart (the table gives the mean ± std)")
    else:
        notes.append("nothing was swept: no accuracy chart")
    x = cost_axis(done)
    if x is None:
        notes.append("tokens per image and parameters are the same in every run: no cost chart")
    else:
        path, note = _cost_chart([r for r in done if r[x] is not None], x, out_dir / "cost.png")
        written.append(path)
        notes += [note] if note else []
    return written, notes


def accuracy_panels(rows: list[dict[str, Any]], axes: list[str]) -> list[Panel]:
    """The series accuracy.png draws from finished rows: a panel per swept option but the seed."""
    panels = []
    for key in (k for k in axes if k != "seed"):
        at = [r for r in rows if key in r["values"] and r.get("test_accuracy") is not None]
        values = sorted({r["values"][key] for r in at}, key=_order)
        if not values:
            continue
        categorical = not all(_is_number(v) for v in values)
        log = not categorical and min(values) > 0 and max(values) >= 10 * min(values)
        points = []
        for value in values:
            accuracies = [100 * r["test_accuracy"] for r in at if _same(r["values"][key], value)]
            std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
            points.append(Point(value, fmt_value(value), statistics.fmean(accuracies), std, len(accuracies)))
        panels.append(Panel(key, flag(key), categorical, log, points))
    return panels


def cost_axis(rows: list[dict[str, Any]]) -> str | None:
    """What cost.png is drawn against: "tokens" where the ViT runs' token counts differ, else
    "parameters" where the runs' sizes differ, else None (no chart: every run costs alike)."""
    for key in ("tokens", "parameters"):
        if len({r[key] for r in rows if r[key] is not None}) > 1:
            return key
    return None


def _accuracy_chart(panels: list[Panel], mixed: bool, path: Path) -> Path:
    plt = png.pyplot()
    width = max(6.4, 3.6 * len(panels))
    fig, axs = plt.subplots(1, len(panels), figsize=(width, 3.4), squeeze=False, sharey=True)
    for ax, panel in zip(axs[0], panels):
        means = [p.mean for p in panel.points]
        stds = [p.std for p in panel.points] if any(p.runs > 1 for p in panel.points) else None
        if panel.categorical:
            where = range(len(panel.points))
            ax.errorbar(where, means, yerr=stds, fmt="o", capsize=4, color="tab:blue")
            ax.set_xticks(where, [p.label for p in panel.points], rotation=20 if len(where) > 4 else 0)
            ax.set_xlim(-0.5, len(panel.points) - 0.5)
        else:
            values = [p.value for p in panel.points]
            ax.errorbar(values, means, yerr=stds, fmt="o-", capsize=4, color="tab:blue")
            if panel.log:
                ax.set_xscale("log")
            ax.set_xticks(values, [p.label for p in panel.points])
            ax.minorticks_off()
        ax.set_xlabel(panel.label)
        ax.grid(alpha=0.3)
    axs[0][0].set_ylabel("test accuracy (%)")
    spread = [p.mean + s * p.std for panel in panels for p in panel.points for s in (-1, 1)]
    axs[0][0].set_ylim(*png.axis_limits(spread, MIN_SPAN, 0.0, 100.0))
    fig.suptitle(accuracy_title(panels, mixed), fontsize=10)
    return png.save(fig, path)


def accuracy_title(panels: list[Panel], mixed: bool) -> str:
    """What accuracy.png's points are: a mean and a standard deviation only where runs were averaged."""
    most = max(p.runs for panel in panels for p in panel.points)
    if most == 1:
        return "test accuracy: one run per value (a single seed: no spread to show)"
    over = "seeds and the other swept options" if mixed else "seeds"
    return f"test accuracy: mean ± std over {over} (up to {most} runs a point)"


def _cost_chart(rows: list[dict[str, Any]], x: str, path: Path) -> tuple[Path, str | None]:
    plt = png.pyplot()
    # On the CPU vitcli can only read the process's peak resident memory, which in a sweep (one process)
    # is the high-water mark of every run so far, not the run's own: only GPU peaks are charted.
    gpu = [r for r in rows if r["peak_memory"] is not None and str(r["device"]).startswith("cuda")]
    fig, panels = plt.subplots(1, 2 if gpu else 1, figsize=(9 if gpu else 4.8, 3.6), squeeze=False)
    _scatter_by(panels[0][0], rows, x, lambda r: r["train_seconds"], "train time (s)")
    note = None
    if gpu:
        _scatter_by(panels[0][1], gpu, x, lambda r: r["peak_memory"] / 2**20, "peak GPU memory (MiB)")
    else:
        note = (
            "peak memory left out of cost.png: on the CPU only the whole process's peak is known, "
            "not each run's"
        )
    fig.suptitle(f"cost against {_COST_AXES[x]}", fontsize=10)
    return png.save(fig, path), note


_COST_AXES = {"tokens": "tokens per image", "parameters": "parameters"}


def _scatter_by(ax, rows: list[dict[str, Any]], x: str, y, label: str) -> None:
    ax.scatter([r[x] for r in rows], [y(r) for r in rows], s=18)
    for r in rows:
        ax.annotate(
            _short(r["values"]),
            (r[x], y(r)),
            fontsize=6,
            alpha=0.7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xscale("log", base=2 if x == "tokens" else 10)
    if len(ticks := sorted({r[x] for r in rows})) <= 8:  # the values themselves, not powers of the base
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.minorticks_off()
    ax.set_xlabel(f"{_COST_AXES[x]} (log scale)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)


def _order(value: Any) -> tuple:
    # Numbers in numeric order, then everything else by name; bools and None are not numbers here.
    return (0, value, "") if _is_number(value) else (1, 0, str(value))


def _short(values: dict[str, Any]) -> str:
    return ",".join(fmt_value(v) for v in values.values())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    # 1 == True in Python, but a swept True is not the number 1.
    return a == b and isinstance(a, bool) == isinstance(b, bool)
