"""The report's own charts, as PNG bytes: curves of runs (seeds as a mean and a band), a sweep's accuracy
against each swept option, and accuracy against cost with the front marked. The attention and inspect
figures are the commands' own (`sections`).

Accuracy axes never zoom into noise: they span at least MIN_SPAN of accuracy, and points carry their
test set's 95% interval where it is known.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from vitcli.lab.reporting.stats import SeedBand
from vitcli.runtime import png
from vitcli.runtime.outputs import png_mark

MIN_SPAN = png.ACCURACY_SPAN  # an accuracy axis spans at least 10 points
DPI = 100
MAX_CURVES = 10  # series in one curves chart; more would be unreadable


@dataclass
class Curve:
    label: str
    epochs: list[int]
    series: dict[str, list[float | None]]  # train_loss, val_loss, train_accuracy, val_accuracy
    bands: dict[str, SeedBand] | None = None  # for a mean over seeds: the band of each series
    seeds: int = 1


@dataclass
class Point:
    label: str  # the x value (an option's value) or the run
    accuracy: float
    low: float | None = None  # its 95% interval
    high: float | None = None


def to_png(fig, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> bytes:
    """The figure as PNG bytes, laid out inside `rect` (the rest: room for a figure legend), then closed."""
    buffer = io.BytesIO()
    try:
        fig.tight_layout(rect=rect)
        fig.savefig(buffer, dpi=DPI, format="png", metadata=png_mark("report"))
    finally:
        png.pyplot().close(fig)
    return buffer.getvalue()


def accuracy_limits(values: list[float]) -> tuple[float, float]:
    """y limits that hold `values` (accuracies, 0-1) and span at least MIN_SPAN."""
    return png.axis_limits(values, MIN_SPAN, 0.0, 1.0)


def curves_png(curves: list[Curve]) -> bytes:
    """Loss and accuracy per epoch, train dashed and validation solid, a colour per run; a run of several
    seeds is their mean with the min-max band."""
    plt = png.pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    accuracies: list[float] = []
    for i, curve in enumerate(curves):
        colour = colours[i % len(colours)]
        for ax, kind in ((loss_ax, "loss"), (acc_ax, "accuracy")):
            for split, style in (("train", "--"), ("val", "-")):
                key = f"{split}_{kind}"
                known = [(e, v) for e, v in zip(curve.epochs, curve.series.get(key, [])) if v is not None]
                if not known:
                    continue
                xs, ys = zip(*known)
                # One legend entry per run: the caption says which line is which split.
                label = curve.label if (kind, split) == ("accuracy", "val") else "_nolegend_"
                ax.plot(xs, ys, style, color=colour, lw=1.4, label=label, marker="." if len(xs) < 3 else None)
                if kind == "accuracy":
                    accuracies += ys
                band = (curve.bands or {}).get(key)
                if band is not None and curve.seeds > 1:
                    ax.fill_between(band.epochs, band.low, band.high, color=colour, alpha=0.15, lw=0)
                    if kind == "accuracy":
                        accuracies += [v for v in band.low + band.high if v is not None]
    loss_ax.set(title="loss", xlabel="epoch", ylabel="cross-entropy")
    acc_ax.set(title="accuracy", xlabel="epoch", ylabel="accuracy")
    if accuracies:
        acc_ax.set_ylim(*accuracy_limits(accuracies))
    acc_ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    for ax in (loss_ax, acc_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    handles, labels = acc_ax.get_legend_handles_labels()
    columns = 2 if max(map(len, labels), default=0) > 30 else 4
    rows = (len(labels) + columns - 1) // columns
    height = 4.2 + 0.22 * rows
    fig.set_size_inches(11, height)
    if handles:
        fig.legend(
            handles, labels, loc="lower center", ncol=min(columns, len(labels)), fontsize=8, frameon=False
        )
    # tight_layout leaves a figure legend out: keep it its rows under the axes
    return to_png(fig, (0, (0.22 * rows + 0.1) / height if rows else 0, 1, 1))


def options_png(panels: list[tuple[str, list[Point], list[Point]]]) -> bytes:
    """One panel per swept option: each run's test accuracy (with its interval) at its value, on a
    categorical axis, and the mean over the runs at each value."""
    plt = png.pyplot()
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax, (option, runs, means) in zip(axes.flat, panels):
        order = list(dict.fromkeys(p.label for p in means))
        x = {label: i for i, label in enumerate(order)}
        values = [p.accuracy for p in runs] + [v for p in runs for v in (p.low, p.high) if v is not None]
        for p in runs:
            errors = (
                [[p.accuracy - p.low], [p.high - p.accuracy]]
                if p.low is not None and p.high is not None
                else None
            )
            ax.errorbar(
                x[p.label], p.accuracy, yerr=errors, fmt="o", color="#4a7ab5", ms=4, alpha=0.7, capsize=2
            )
        ax.plot([x[p.label] for p in means], [p.accuracy for p in means], "_", color="#c0392b", ms=22, mew=2)
        ax.set_xticks(range(len(order)), order, rotation=30 if max(map(len, order)) > 6 else 0)
        ax.set(title=option, ylabel="test accuracy")
        ax.set_ylim(*accuracy_limits(values))
        ax.set_xlim(-0.6, len(order) - 0.4)
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        ax.grid(axis="y", alpha=0.3)
    return to_png(fig)


def cost_png(points: list[tuple[str, float, float | None, int | None]], front: dict[str, list[int]]) -> bytes:
    """Test accuracy against train time and against parameters (log axes where they span a decade), the
    runs on the
    best-accuracy-for-cost front joined and ringed. `points`: (label, accuracy, seconds, parameters)."""
    plt = png.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, index, key, xlabel in (
        (axes[0], 2, "seconds", "train time (s)"),
        (axes[1], 3, "parameters", "parameters"),
    ):
        known = [(i, p) for i, p in enumerate(points) if p[index] is not None]
        ax.scatter([p[index] for _, p in known], [p[1] for _, p in known], s=18, color="#4a7ab5", alpha=0.75)
        on_front = [points[i] for i in front.get(key, [])]
        if on_front:
            ax.plot(
                [p[index] for p in on_front],
                [p[1] for p in on_front],
                "-o",
                color="#c0392b",
                mfc="none",
                ms=9,
                lw=1,
                label="front",
            )
            ax.legend(fontsize=8, loc="lower right")
        xs = [p[index] for _, p in known]
        if xs and min(xs) > 0 and max(xs) / min(xs) > 10:  # log only where the costs span a decade
            ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.4g}"))
        ax.set(xlabel=xlabel, ylabel="test accuracy")
        if known:
            ax.set_ylim(*accuracy_limits([p[1] for _, p in known]))
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
        ax.grid(alpha=0.3)
    return to_png(fig)
