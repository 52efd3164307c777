"""Pictures as PNG files: matplotlib on its Agg backend (no display needed), written atomically.

matplotlib is imported only when a picture is drawn, so that nothing else pays for it.
"""

from __future__ import annotations

from pathlib import Path

from vitcli.runtime.files import atomic_write, writing
from vitcli.runtime.outputs import png_mark, write_output

ACCURACY_SPAN = 0.10  # an accuracy axis spans at least this much (10 points), so noise is not a trend


def pyplot():
    """matplotlib's pyplot on the Agg backend: files only, never a window, fine without a display."""
    import matplotlib  # heavy and needed only for pictures

    matplotlib.use("Agg")
    # matplotlib is heavy and needed only to draw
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path, command: str | None = None, overwrite: bool = False) -> Path:
    """Write a figure as a PNG atomically (one line naming the file if that fails), then close it.

    Without `command`, a file of a run or sweep directory, which the command holding the directory
    rewrites as the run goes. With it, a named output of `vitcli COMMAND`: marked as that command's
    (runtime.outputs), and written over an old file only with `overwrite` (which the caller checked)."""
    try:
        fig.tight_layout()
        if command is None:
            with writing(path, "chart"):
                atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
        else:
            mark = png_mark(command)
            write_output(
                path,
                lambda tmp: fig.savefig(tmp, dpi=100, format="png", metadata=mark),
                "--out",
                overwrite,
                "chart",
            )
    finally:
        pyplot().close(fig)
    return path


def axis_limits(values: list[float], min_span: float, lowest: float, highest: float) -> tuple[float, float]:
    """Limits that hold `values` and span at least `min_span`, inside [lowest, highest]: an axis of
    accuracies zoomed onto a few tenths of a point makes noise look like a trend."""
    low, high = min(values), max(values)
    pad = max(min_span - (high - low), 0.0) / 2 + min_span / 10
    low, high = low - pad, high + pad
    if low < lowest:
        low, high = lowest, max(high + (lowest - low), lowest + min_span)
    if high > highest:
        low, high = min(low - (high - highest), highest - min_span), highest
    return max(low, lowest), min(high, highest)
