"""PNG charts of a sweep's results, with matplotlib's Agg backend (no display needed).

    accuracy.png   test (and val) accuracy against each swept option, every run a dot, the mean a line
    cost.png       train time, and peak GPU memory where it was measured, against tokens per image:
                   attention's cost grows with the square of the token count

matplotlib is imported only when a chart is drawn, so the CLI starts as fast without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vitcli.sweep import fmt_value
from vitcli.sweep_results import FINISHED


def write_charts(
    rows: list[dict[str, Any]], axes: list[str], out_dir: str | Path
) -> tuple[list[Path], list[str]]:
    """Write the charts for the finished rows; return the files written and why any chart was left out."""
    out_dir = Path(out_dir)
    done = [r for r in rows if r["status"] == FINISHED]
    written, notes = [], []
    if not done:
        return [], ["no finished runs to chart"]
    if axes:
        written.append(_accuracy_chart(done, axes, out_dir / "accuracy.png"))
    else:
        notes.append("nothing was swept: no accuracy chart")
    if any(r["tokens"] is not None for r in done):
        path, note = _cost_chart(done, out_dir / "cost.png")
        written.append(path)
        notes += [note] if note else []
    else:
        notes.append("no ViT runs (the CNN has no tokens): no cost chart")
    return written, notes


def pyplot():
    """matplotlib's pyplot on the Agg backend: files only, never a window, fine without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _accuracy_chart(rows: list[dict[str, Any]], axes: list[str], path: Path) -> Path:
    plt = pyplot()
    fig, panels = plt.subplots(1, len(axes), figsize=(3.6 * len(axes), 3.4), squeeze=False, sharey=True)
    for ax, key in zip(panels[0], axes):
        values = sorted({r["values"][key] for r in rows if key in r["values"]}, key=_order)
        # Evenly spaced positions: swept values are few and often powers of two or categories.
        where = {v: i for i, v in enumerate(values)}
        for metric, colour in (("test_accuracy", "tab:blue"), ("val_accuracy", "tab:orange")):
            points = [
                (where[r["values"][key]], 100 * r[metric])
                for r in rows
                if r.get(metric) is not None and key in r["values"]
            ]
            if not points:
                continue
            ax.scatter(*zip(*points), s=14, alpha=0.5, color=colour)
            means = [
                (x, sum(y for px, y in points if px == x) / sum(1 for px, _ in points if px == x))
                for x in sorted({px for px, _ in points})
            ]
            ax.plot(*zip(*means), marker="o", color=colour, label=metric.split("_")[0])
        ax.set_xticks(range(len(values)), [fmt_value(v) for v in values])
        ax.set_xlabel(key)
        ax.grid(alpha=0.3)
    panels[0][0].set_ylabel("accuracy (%)")
    panels[0][0].legend()
    fig.suptitle("accuracy against each swept option (dots: runs; lines: means)", fontsize=10)
    return _save(fig, path)


def _cost_chart(rows: list[dict[str, Any]], path: Path) -> tuple[Path, str | None]:
    plt = pyplot()
    vit = [r for r in rows if r["tokens"] is not None]
    # On the CPU vitcli can only read the process's peak resident memory, which in a sweep (one process)
    # is the high-water mark of every run so far, not the run's own: only GPU peaks are charted.
    gpu = [r for r in vit if r["peak_memory"] is not None and str(r["device"]).startswith("cuda")]
    fig, panels = plt.subplots(1, 2 if gpu else 1, figsize=(9 if gpu else 4.8, 3.6), squeeze=False)
    _scatter_by_tokens(panels[0][0], vit, lambda r: r["train_seconds"], "train time (s)")
    note = None
    if gpu:
        _scatter_by_tokens(panels[0][1], gpu, lambda r: r["peak_memory"] / 2**20, "peak GPU memory (MiB)")
    else:
        note = (
            "peak memory left out of cost.png: on the CPU only the whole process's peak is known, "
            "not each run's"
        )
    fig.suptitle("cost against tokens per image", fontsize=10)
    return _save(fig, path), note


def _scatter_by_tokens(ax, rows: list[dict[str, Any]], y, label: str) -> None:
    ax.scatter([r["tokens"] for r in rows], [y(r) for r in rows], s=18)
    for r in rows:
        ax.annotate(
            _short(r["values"]),
            (r["tokens"], y(r)),
            fontsize=6,
            alpha=0.7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens per image (log scale)")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)


def _save(fig, path: Path) -> Path:
    from vitcli.files import atomic_write, writing

    try:
        with writing(path, "chart"):
            fig.tight_layout()
            atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        pyplot().close(fig)
    return path


def _order(value: Any) -> tuple:
    # Numbers in numeric order, then everything else by name; bools and None are not numbers here.
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, str(value))


def _short(values: dict[str, Any]) -> str:
    return ",".join(fmt_value(v) for v in values.values())
