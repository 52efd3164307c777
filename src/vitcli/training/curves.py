"""Loss and accuracy against epoch, as PNG charts (matplotlib's Agg backend, imported only when drawn).

    write_run_curves   one run: loss and accuracy, train and validation (a run directory's curves.png)
    write_comparison   several runs on shared axes, one colour each: train loss, val loss, train accuracy,
                       val accuracy (`vitcli compare`)

A history is metrics.jsonl's lines as dicts (`EpochMetrics.to_dict()`): epoch, train_loss, train_accuracy,
val_loss, val_accuracy, ...; a value that is None (a run without a validation split) is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vitcli.runtime import png  # png.save looked up per call: tests watch what is drawn
from vitcli.runtime.outputs import check_output, png_made_by

CURVES = "curves.png"
COMPARE = "compare"  # the mark of write_comparison's PNGs (runtime.outputs.png_mark)
PANELS = (
    ("train_loss", "train loss"),
    ("val_loss", "val loss"),
    ("train_accuracy", "train accuracy (%)"),
    ("val_accuracy", "val accuracy (%)"),
)
History = Sequence[dict[str, Any]]


def write_run_curves(history: History, path: str | Path, title: str | None = None) -> Path:
    """One run's loss (left) and accuracy (right) against epoch, train solid and validation dashed."""

    plt = png.pyplot()
    # Small and at 100 dpi: this is drawn after every epoch, so it must cost little (tens of ms).
    fig, (loss, accuracy) = plt.subplots(1, 2, figsize=(7, 2.8))
    for split, style in (("train", "-"), ("val", "--")):
        _line(loss, history, f"{split}_loss", label=split, linestyle=style, color="tab:blue")
        _line(accuracy, history, f"{split}_accuracy", label=split, linestyle=style, color="tab:orange")
    for ax, name in ((loss, "loss"), (accuracy, "accuracy (%)")):
        _epoch_axis(ax)
        ax.set_ylabel(name)
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return png.save(fig, Path(path))


def write_comparison(runs: Sequence[tuple[str, History]], path: str | Path, overwrite: bool = False) -> Path:
    """Every run's curves in four panels (train and val loss above, train and val accuracy below), each
    row on one y axis, one colour per run and a legend of their labels below the panels. A file already
    at `path` is replaced only with `overwrite`, and only if `vitcli compare` drew it."""
    path = Path(path)
    check_output(path, "--out", overwrite, png_made_by(COMPARE), f"vitcli {COMPARE}")

    plt = png.pyplot()
    fig, panels = plt.subplots(2, 2, figsize=(9, 6.2), sharex=True, sharey="row")
    colours = plt.get_cmap("tab10" if len(runs) <= 10 else "tab20")
    for i, (label, history) in enumerate(runs):
        # Past the palette's colours, the same colours again with another line style.
        style = {"color": colours(i % colours.N), "linestyle": ("-", "--", ":", "-.")[i // colours.N % 4]}
        for ax, (key, _) in zip(panels.flat, PANELS):
            _line(ax, history, key, label=label, **style)
    for i, (ax, (_, name)) in enumerate(zip(panels.flat, PANELS)):
        ax.set_title(name, fontsize=9)
        _epoch_axis(ax, label=i >= 2)  # the x axis is shared: named under the lower row only
        if not ax.lines:  # no run had this (no validation split)
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes, alpha=0.6)
    losses = [y for ax in panels[0] for line in ax.lines for y in line.get_ydata() if y > 0]
    if losses and max(losses) > 20 * min(losses):  # a diverging early epoch would flatten the others
        panels[0][0].set_yscale("log")
        panels[0][0].set_title("train loss (log scale)", fontsize=9)
        panels[0][1].set_title("val loss (log scale)", fontsize=9)
    handles, labels = _legend_entries(panels.flat)
    # Below the panels, tied to the lower left one so that save()'s tight layout makes room for it.
    panels[1][0].legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(0, -0.18),
        ncol=min(3, len(labels)) or 1,
        fontsize=7,
        frameon=False,
    )
    return png.save(fig, path, COMPARE, overwrite)


def _line(ax, history: History, key: str, **style) -> None:
    scale = 100 if key.endswith("accuracy") else 1
    points = [(m["epoch"], scale * m[key]) for m in history if m.get(key) is not None]
    if points:
        ax.plot(*zip(*points), marker=".", markersize=5, **style)


def _epoch_axis(ax, label: bool = True) -> None:
    # matplotlib is heavy and needed only to draw
    from matplotlib.ticker import MaxNLocator

    if label:
        ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)


def _legend_entries(axes) -> tuple[list, list[str]]:
    """One legend entry per run, from whichever panel has its line."""
    entries: dict[str, Any] = {}
    for ax in axes:
        for line in ax.lines:
            entries.setdefault(line.get_label(), line)
    return list(entries.values()), list(entries)
