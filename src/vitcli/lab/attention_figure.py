"""One PNG per image: the input, the rollout, and one row per block of [CLS] attention maps (of the
mean query, for a model that pools its tokens instead of reading [CLS]).

    row 0        input | input + rollout | rollout
    row 1..L     head 1 | ... | head H | mean of the heads      (block 1 at the top)

Every block map uses one colour scale (0 to the largest weight in the figure), so maps can be compared
across heads and blocks; the colour bar on the right gives it. The rollout is a different quantity and
is scaled to its own maximum. Maps are drawn with nearest-neighbour upsampling so each patch stays a
visible square. The figure has a fixed size in pixels, set by the grid alone.
"""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np

from vitcli.lab.explain import AttentionReport, ImageAttention
from vitcli.runtime import png  # png.save looked up per call: tests watch what is drawn
from vitcli.runtime.outputs import check_output, png_made_by, png_mark, write_output
from vitcli.training.checkpoint import outputs_home

CELL_PX = 160  # one map
COLORBAR_PX = 90
TITLE_PX = 50
DPI = 100
CMAP = "inferno"
COMMAND = "attention"  # the PNGs' mark (runtime.outputs.png_mark): what --overwrite may replace


def draw_report(
    report: AttentionReport, out: str | Path | None = None, overwrite: bool = False
) -> AttentionReport:
    """One PNG per image of `report` in `out` (default: the run directory's attention/, or a shipped
    model's NAME-outputs/attention/: `training.checkpoint.outputs_home`); the report with their paths. A
    picture already there is replaced only with `overwrite`, and only if `vitcli attention` drew it."""
    out_dir = Path(out) if out is not None else outputs_home(report.checkpoint) / "attention"
    pictures = picture_paths([r.source for r in report.images], out_dir)
    for picture in pictures:  # all refused before any is drawn
        check_output(picture, "--out", overwrite, png_made_by(COMMAND), f"vitcli {COMMAND}")
    note = f"rollout: {report.head_fusion} of heads" + (
        f", discard {report.discard_ratio:g}" if report.discard_ratio else ""
    )
    for result, picture in zip(report.images, pictures):
        save_figure(result, report.classes, picture, note, overwrite)
    return dataclasses.replace(report, pictures=pictures)


def picture_paths(sources: list[str], out_dir: Path) -> list[Path]:
    """One PNG path per image: "test[17]" -> test-17.png, "photos/seven.png" -> seven.png; never the path
    of an input image (`--image photos/a.png --out photos` must not overwrite the photo: a-2.png), and
    never one path for two inputs (a/seven.png and b/seven.png give seven.png and seven-2.png)."""
    inputs = {Path(source).resolve() for source in sources if not source.endswith("]")}
    paths: list[Path] = []
    for source in sources:
        stem = _file_name(source)
        names = (f"{stem}.png" if n == 1 else f"{stem}-{n}.png" for n in itertools.count(1))
        paths.append(
            next(
                out_dir / name
                for name in names
                if out_dir / name not in paths and (out_dir / name).resolve() not in inputs
            )
        )
    return paths


def _file_name(source: str) -> str:
    """ "test[17]" -> "test-17"; "photos/seven.png" -> "seven"."""
    if source.endswith("]") and "[" in source:
        split, index = source[:-1].split("[")
        return f"{split}-{index}"
    return Path(source).stem


def grid_shape(blocks: int, heads: int) -> tuple[int, int]:
    """(rows, columns) of map cells: a header row plus a row per block; heads plus their mean, at
    least the header's three."""
    return blocks + 1, max(3, heads + 1)


def figure_size_px(blocks: int, heads: int) -> tuple[int, int]:
    rows, cols = grid_shape(blocks, heads)
    return cols * CELL_PX + COLORBAR_PX, rows * CELL_PX + TITLE_PX


def save_figure(
    result: ImageAttention, classes: list[str], path: str | Path, note: str = "", overwrite: bool = False
) -> None:
    """Write the picture for one image to `path` (PNG, atomically; over an old file only with
    `overwrite`)."""
    # matplotlib is heavy and needed only to draw
    from matplotlib.colors import Normalize


    plt = png.pyplot()
    blocks, heads = result.cls_attention.shape[:2]
    width, height = figure_size_px(blocks, heads)
    fig = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    try:
        cells = _Cells(fig, blocks, heads, displayable(result.image))
        maps = result.cls_attention.numpy()
        means = maps.mean(axis=1)
        norm = Normalize(0, max(float(maps.max()), float(means.max()), 1e-12))
        _header_row(cells, result, classes, Normalize)
        for b in range(blocks):
            for h in range(heads):
                cells.overlay(
                    cells.cell(b + 1, h, f"block {b + 1} head {h + 1}" if h == 0 else f"head {h + 1}"),
                    maps[b, h],
                    norm,
                )
            cells.overlay(cells.cell(b + 1, heads, "mean of heads"), means[b], norm)
            cells.blank(b + 1, heads + 1)
        bar = fig.colorbar(
            plt.cm.ScalarMappable(norm=norm, cmap=CMAP), cax=fig.add_subplot(cells.grid[1:, cells.cols])
        )
        bar.set_label(f"{result.query} attention weight", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        title = f"{result.source}: predicted {classes[result.prediction]} ({100 * result.probability:.1f}%)"
        fig.suptitle(title + (f"   {note}" if note else ""), fontsize=10, y=1 - 0.3 * TITLE_PX / height)
        # No bbox_inches="tight": the file keeps the size figure_size_px promises.
        write_output(
            Path(path),
            lambda tmp: fig.savefig(tmp, dpi=DPI, format="png", metadata=png_mark(COMMAND)),
            "--out",
            overwrite,
        )
    finally:
        plt.close(fig)


class _Cells:
    """The figure's grid of map cells, and the two ways a cell shows a map."""

    def __init__(self, fig, blocks: int, heads: int, image: np.ndarray):
        rows, self.cols = grid_shape(blocks, heads)
        width, height = figure_size_px(blocks, heads)
        self.fig, self.image = fig, image
        self.extent = (0, image.shape[1], image.shape[0], 0)
        self.grid = fig.add_gridspec(
            rows,
            self.cols + 1,
            width_ratios=[CELL_PX] * self.cols + [COLORBAR_PX * 0.25],
            left=0.02,
            right=1 - 0.75 * COLORBAR_PX / width,
            bottom=0.01,
            top=1 - TITLE_PX / height,
            wspace=0.08,
            hspace=0.25,
        )

    def cell(self, row: int, col: int, title: str):
        ax = self.fig.add_subplot(self.grid[row, col])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=8)
        return ax

    def blank(self, row: int, from_col: int) -> None:
        for col in range(from_col, self.cols):
            self.fig.add_subplot(self.grid[row, col]).axis("off")

    def show_image(self, ax) -> None:
        ax.imshow(self.image, cmap="gray", extent=self.extent, vmin=0, vmax=255)

    def overlay(self, ax, attention: np.ndarray, norm) -> None:
        self.show_image(ax)
        ax.imshow(attention, cmap=CMAP, norm=norm, alpha=0.6, extent=self.extent, interpolation="nearest")


def _header_row(cells: _Cells, result: ImageAttention, classes: list[str], normalize) -> None:
    """The input, the input with the rollout over it, and the rollout on its own colour scale."""
    truth = "" if result.label is None else f"  (true: {classes[result.label]})"
    cells.show_image(cells.cell(0, 0, "input" + truth))
    rolled = result.rollout.numpy()
    rollout_norm = normalize(0, max(float(rolled.max()), 1e-12))
    cells.overlay(cells.cell(0, 1, "input + rollout"), rolled, rollout_norm)
    cells.cell(0, 2, "rollout (own scale)").imshow(
        rolled, cmap=CMAP, norm=rollout_norm, interpolation="nearest"
    )
    cells.blank(0, 3)


def displayable(image) -> np.ndarray:
    """(C, H, W) tensor -> (H, W) or (H, W, 3) array for imshow, of the tensor's dtype (uint8 images, or
    float means of them in 0-255)."""
    array = image.numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def overlay_rgb(result: ImageAttention, max_side: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """(input, input blended with the rollout) as uint8 (H, W, 3) arrays for a terminal preview,
    shrunk by an integer factor so neither side exceeds `max_side` pixels."""
    # matplotlib is heavy and needed only to draw
    from matplotlib import colormaps

    image = result.image.float()
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    step = max(1, -(-max(image.shape[1:]) // max_side))
    image = image[:, ::step, ::step].permute(1, 2, 0).numpy()
    rolled = result.rollout.numpy()
    rolled = rolled / max(float(rolled.max()), 1e-12)
    # Nearest-neighbour upsampling of the patch grid to the image, as in the PNG.
    rows = np.arange(image.shape[0]) * rolled.shape[0] // image.shape[0]
    cols = np.arange(image.shape[1]) * rolled.shape[1] // image.shape[1]
    heat = colormaps[CMAP](rolled[rows][:, cols])[..., :3] * 255
    blended = 0.4 * image + 0.6 * heat
    return image.astype(np.uint8), blended.clip(0, 255).astype(np.uint8)
