"""Pictures as PNG files: matplotlib on its Agg backend (no display needed), written atomically.

matplotlib is imported only when a picture is drawn, so that nothing else pays for it.
"""

from __future__ import annotations

from pathlib import Path

from vitcli.runtime.files import atomic_write, writing


def pyplot():
    """matplotlib's pyplot on the Agg backend: files only, never a window, fine without a display."""
    import matplotlib  # heavy and needed only for pictures

    matplotlib.use("Agg")
    # matplotlib is heavy and needed only to draw
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """Write a figure as a PNG atomically (one line naming the file if that fails), then close it."""
    try:
        with writing(path, "chart"):
            fig.tight_layout()
            atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        pyplot().close(fig)
    return path
