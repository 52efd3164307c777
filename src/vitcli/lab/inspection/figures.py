"""inspect's pictures, one PNG per figure (one per image for --evolution), each sized to fit a page:

    distance.png    mean attention distance against depth, a dot per head, the uniform-attention line
    positions.png   for each patch, its position embedding's cosine similarity with every patch's
    filters.png     the patch projection's leading principal components, as patches
    classes.png     a column per class: its mean image, then its mean [CLS] map in each block
    evolution-val-17.png   one image's [CLS] map per block (columns) after each epoch (rows)
    against-B.png   per-class accuracy of both models, and images only one of them gets right

Maps are drawn with nearest-neighbour upsampling so that each patch stays a visible square.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from vitcli.lab.attention_figure import displayable, picture_paths
from vitcli.lab.inspection.analysis import InspectReport
from vitcli.runtime import png  # png.save looked up per call: tests watch what is drawn
from vitcli.runtime.outputs import check_output, png_made_by, png_mark, write_output
from vitcli.training.checkpoint import outputs_home
from vitcli.training.snapshots import spaced_indices

DPI = 100
CMAP = "inferno"
MAX_CLASSES = 20  # columns of classes.png and bars of against-B.png; --json has every class
MAX_EPOCHS = 12  # rows of an evolution picture: evenly spaced epochs, the first and last included
EXAMPLES = 8  # images per row of against-B.png
COMMAND = "inspect"  # the PNGs' mark (runtime.outputs.png_mark): what --overwrite may replace


def draw_report(
    report: InspectReport, out: str | Path | None = None, overwrite: bool = False
) -> InspectReport:
    """The PNGs of every figure in `report`, in `out` (default: the run directory's inspect/); the
    report with their paths. A picture already there is replaced only with `overwrite`, and only if
    `vitcli inspect` drew it."""
    out_dir = Path(out) if out is not None else outputs_home(report.checkpoint) / "inspect"
    planned: dict[str, list[tuple[Path, object]]] = {}  # figure -> its (path, draw) pairs
    drawers = {
        "distance": (report.distance, _distance),
        "positions": (report.similarity, _positions),
        "filters": (report.components, _filters),
        "classes": (report.class_maps, _classes),
    }
    for name, (data, draw) in drawers.items():
        if data is not None:
            planned[name] = [(out_dir / f"{name}.png", lambda fig, draw=draw: draw(fig, report))]
    if report.evolution is not None:
        paths = picture_paths(report.evolution.sources, out_dir)
        planned["evolution"] = [
            (path.with_name(f"evolution-{path.name}"), lambda fig, i=i: _evolution(fig, report, i))
            for i, path in enumerate(paths)
        ]
    if report.against is not None:
        name = _run_name(report.against.b)
        planned["against"] = [(out_dir / f"against-{name}.png", lambda fig: _against(fig, report))]
    for path, _ in (pair for pairs in planned.values() for pair in pairs):  # all refused before any is drawn
        check_output(path, "--out", overwrite, png_made_by(COMMAND), f"vitcli {COMMAND}")
    pictures = {
        name: [_save(path, draw, overwrite) for path, draw in pairs] for name, pairs in planned.items()
    }
    return dataclasses.replace(report, pictures=pictures)


def _run_name(checkpoint: Path) -> str:
    """runs/cnn-mnist/model.safetensors -> cnn-mnist; weights.safetensors -> weights."""
    return checkpoint.parent.name if checkpoint.name == "model.safetensors" else checkpoint.stem


def _save(path: Path, draw, overwrite: bool) -> Path:
    """Draw on a new figure, which `draw` sizes, and write it atomically as PNG."""

    plt = png.pyplot()
    fig = plt.figure(dpi=DPI)
    try:
        draw(fig)
        write_output(
            path,
            lambda tmp: fig.savefig(tmp, dpi=DPI, format="png", metadata=png_mark(COMMAND)),
            "--out",
            overwrite,
            "picture",
        )
    finally:
        plt.close(fig)
    return path


def _image(ax, image: np.ndarray) -> tuple[float, float, float, float]:
    """Draw an image (gray or RGB, uint8 or float in 0-255); its extent, for maps laid over it."""
    extent = (0, image.shape[1], image.shape[0], 0)
    if image.ndim == 2:
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, extent=extent)
    else:  # imshow reads float RGB in 0-1
        ax.imshow(image.astype(np.float32).clip(0, 255) / 255, extent=extent)
    return extent


def _overlay(ax, image: np.ndarray, attention: np.ndarray, norm) -> None:
    extent = _image(ax, image)
    ax.imshow(attention, cmap=CMAP, norm=norm, alpha=0.6, extent=extent, interpolation="nearest")


def _bare(ax, title: str = "", size: int = 8) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=size)


def _scope(report: InspectReport) -> str:
    sample = report.sample
    if sample is None:
        return ""
    of = "" if len(sample.labels) == sample.size else f" of {sample.size:,}"
    return f"{len(sample.labels):,}{of} {sample.split} images"


# --- the four figures of one checkpoint ----------------------------------------------------------------


def _distance(fig, report: InspectReport) -> None:
    fig.set_size_inches(7, 4.5)
    ax = fig.add_subplot()
    distance = report.distance.numpy()
    blocks, heads = distance.shape
    offsets = np.linspace(-0.15, 0.15, heads) if heads > 1 else np.zeros(1)
    colours = _plt_colours(heads)
    for h in range(heads):
        ax.scatter(
            np.arange(1, blocks + 1) + offsets[h],
            distance[:, h],
            s=28,
            color=colours[h],
            label=f"head {h + 1}",
        )
    ax.axhline(report.uniform_distance, color="0.5", linestyle="--", linewidth=1)
    ax.text(
        blocks + 0.4,
        report.uniform_distance,
        "uniform attention",
        fontsize=8,
        color="0.4",
        va="bottom",
        ha="right",
    )
    ax.set_xticks(range(1, blocks + 1))
    ax.set_xlim(0.5, blocks + 0.5)
    ax.set_ylim(0, max(float(distance.max()), report.uniform_distance) * 1.15)
    ax.set_xlabel("block (network depth)")
    ax.set_ylabel("mean attention distance (pixels)")
    rows, cols = report.grid_size
    ax.set_title(
        f"Mean attention distance per head: {_scope(report)}, {rows}x{cols} patches of {report.cell[0]:g} px",
        fontsize=9,
    )
    if heads <= 16:
        ax.legend(fontsize=7, ncol=min(heads, 8), loc="lower right", frameon=False)
    fig.tight_layout()


def _plt_colours(n: int) -> list:
    # matplotlib is heavy and needed only to draw
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


def _positions(fig, report: InspectReport) -> None:
    """One tile per patch, laid out as the grid; tile (i, j) is patch (i, j)'s similarity map."""
    similarity = report.similarity.numpy()
    rows, cols = similarity.shape[:2]
    gap = 1
    mosaic = np.full((rows * (rows + gap) - gap, cols * (cols + gap) - gap), np.nan)
    for i in range(rows):
        for j in range(cols):
            top, left = i * (rows + gap), j * (cols + gap)
            mosaic[top : top + rows, left : left + cols] = similarity[i, j]
    fig.set_size_inches(7.2, 6.4)
    ax = fig.add_subplot()
    shown = ax.imshow(mosaic, cmap="viridis", vmin=-1, vmax=1, interpolation="nearest")
    centres = lambda n: [k * (n + gap) + (n - 1) / 2 for k in range(n)]  # noqa: E731
    step = max(1, rows // 14 + (rows > 14))
    ax.set_yticks(centres(rows)[::step], [str(k + 1) for k in range(rows)][::step], fontsize=7)
    step = max(1, cols // 14 + (cols > 14))
    ax.set_xticks(centres(cols)[::step], [str(k + 1) for k in range(cols)][::step], fontsize=7)
    ax.set_xlabel("input patch column")
    ax.set_ylabel("input patch row")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    bar = fig.colorbar(shown, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("cosine similarity", fontsize=8)
    ax.set_title(
        "Position embedding similarity: each tile is one patch's similarity with every patch", fontsize=9
    )
    fig.tight_layout()


def _filters(fig, report: InspectReport) -> None:
    components = report.components
    patches = components.patches.numpy()
    k = len(patches)
    cols = min(7, k)
    rows = -(-k // cols)
    fig.set_size_inches(1.1 * cols + 0.4, 1.25 * rows + 0.8)
    for n in range(k):
        ax = fig.add_subplot(rows, cols, n + 1)
        patch = patches[n]
        if patch.shape[0] == 3:  # colour: each component stretched to the full range, as in the paper
            low, high = patch.min(), patch.max()
            ax.imshow(((patch - low) / max(high - low, 1e-12)).transpose(1, 2, 0), interpolation="nearest")
        else:  # gray (or another channel count: the first channel): 0 is mid-gray
            scale = max(float(np.abs(patch[0]).max()), 1e-12)
            ax.imshow(patch[0], cmap="gray", vmin=-scale, vmax=scale, interpolation="nearest")
        _bare(ax, f"PC{n + 1}  {100 * float(components.explained[n]):.0f}%", 7)
    total = 100 * float(components.explained.sum())
    fig.suptitle(
        f"Principal components of the {components.source} filters ({total:.0f}% of their variance)",
        fontsize=9,
    )
    fig.tight_layout()


def _classes(fig, report: InspectReport) -> None:
    """Row 0: each class's mean image; row b: block b's mean [CLS] map over it, one colour scale per row
    (blocks differ a lot in how peaked they are)."""
    # matplotlib is heavy and needed only to draw
    from matplotlib.colors import Normalize

    maps = report.class_maps.numpy()
    shown = list(range(min(len(report.classes), MAX_CLASSES)))
    blocks = maps.shape[1]
    fig.set_size_inches(0.95 * len(shown) + 0.9, 0.95 * (blocks + 1) + 0.7)
    grid = fig.add_gridspec(
        blocks + 1, len(shown), wspace=0.06, hspace=0.1, left=0.09, right=0.99, bottom=0.01
    )
    counts = report.class_counts.tolist()
    for col, k in enumerate(shown):
        image = displayable(report.class_images[k])
        ax = fig.add_subplot(grid[0, col])
        _image(ax, image)
        _bare(ax, f"{_short(report.classes[k])}\n{counts[k]}", 7)
        if col == 0:
            ax.set_ylabel("mean image", fontsize=7)
        for b in range(blocks):
            norm = Normalize(0, max(float(maps[:, b].max()), 1e-12))
            ax = fig.add_subplot(grid[b + 1, col])
            _overlay(ax, image, maps[k, b], norm)
            _bare(ax)
            if col == 0:
                ax.set_ylabel(f"block {b + 1}", fontsize=7)
    left = len(report.classes) - len(shown)
    note = f"; {left} more classes in --json" if left else ""
    fig.suptitle(f"{report.query} attention averaged per class: {_scope(report)}{note}", fontsize=9)


def _short(name: str, width: int = 10) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


# --- attention across training ------------------------------------------------------------------------


def evolution_epochs(epochs: list[int], limit: int = MAX_EPOCHS) -> list[int]:
    """Positions in `epochs` of at most `limit` rows, evenly spaced, the first and the last kept."""
    n = len(epochs)
    return list(range(n)) if n <= limit else spaced_indices(n, limit)


def _evolution(fig, report: InspectReport, index: int) -> None:
    """Row 0: the input; then a row per epoch (at most MAX_EPOCHS), a column per block, and the colour bar.

    The maps are drawn opaque, not laid over the image at partial opacity as in classes.png, whose blend
    washed their colours out; a gray image's strokes are outlined on them instead (row 0 has the input).
    Every map of the figure shares one colour scale, from 0 to the largest weight drawn, so blocks and
    epochs compare; it is square-root spaced, since one peaked map (0.9 where the others stay below 0.3)
    would leave every other map near black on a linear one. The colour bar says both."""
    # matplotlib is heavy and needed only to draw
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import PowerNorm

    evolution = report.evolution
    rows = evolution_epochs(evolution.epochs)
    maps = evolution.maps[rows, index].numpy()  # (rows, blocks, r, c)
    blocks = maps.shape[1]
    image = displayable(evolution.images[index])
    width, height = 1.1 * blocks + 2.0, 1.1 * (len(rows) + 1) + 0.5
    fig.set_size_inches(width, height)
    grid = fig.add_gridspec(
        len(rows) + 1,
        blocks + 2,
        width_ratios=[0.6] + [1] * blocks + [0.12],
        wspace=0.06,
        hspace=0.25,
        left=0.01,
        right=1 - 0.85 / width,  # room for the colour bar's ticks and label
        bottom=0.01,
        top=1 - 0.45 / height,
    )
    norm = PowerNorm(0.5, 0, max(float(maps.max()), 1e-12))
    label = evolution.labels[index]
    truth = report.classes[label] if 0 <= label < len(report.classes) else str(label)
    ax = fig.add_subplot(grid[0, 1])
    _image(ax, image)
    _bare(ax, f"input: {_short(truth, 14)}", 7)
    for col in range(2, blocks + 1):
        fig.add_subplot(grid[0, col]).axis("off")
    extent = (0, image.shape[1], image.shape[0], 0)  # each map on the image's frame, a patch a square
    for r, e in enumerate(rows, start=1):
        ax = fig.add_subplot(grid[r, 0])
        ax.axis("off")
        ax.text(0.95, 0.5, f"epoch {evolution.epochs[e]}", fontsize=7, ha="right", va="center")
        for b in range(blocks):
            ax = fig.add_subplot(grid[r, b + 1])
            ax.imshow(maps[r - 1, b], cmap=CMAP, norm=norm, extent=extent, interpolation="nearest")
            _outline(ax, image, extent)
            _bare(ax, f"block {b + 1}" if r == 1 else "", 7)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=CMAP), cax=fig.add_subplot(grid[1:, blocks + 1]))
    bar.set_label(f"{evolution.query} attention weight (one square-root scale for all maps)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    fig.suptitle(
        f"{evolution.sources[index]}: {evolution.query} attention per block after each epoch",
        fontsize=9,
        y=1 - 0.12 / height,
    )


def _outline(ax, image: np.ndarray, extent) -> None:
    """A gray image's strokes (where it crosses mid-gray) as a thin cyan line, a colour inferno lacks;
    nothing for a colour image, or a gray one all on one side of mid-gray."""
    if image.ndim == 2 and image.min() < 127.5 < image.max():
        ax.contour(
            image, levels=[127.5], colors="cyan", linewidths=0.5, alpha=0.7, extent=extent, origin="upper"
        )


# --- two models -----------------------------------------------------------------------------------------


def _against(fig, report: InspectReport) -> None:
    """Top: each class's accuracy for A and B (the classes where they differ most, when there are many).
    Below: images only A gets right, then images only B gets right, with what each model said."""
    against = report.against
    a_name, b_name = _run_name(against.a), _run_name(against.b)
    rows = against.per_class()
    shown = sorted(range(len(rows)), key=lambda k: -abs(rows[k]["difference"] or 0))[:MAX_CLASSES]
    shown.sort()
    fig.set_size_inches(10, 8)
    grid = fig.add_gridspec(3, EXAMPLES, height_ratios=[2.2, 1, 1], hspace=0.55, wspace=0.1, top=0.92)
    ax = fig.add_subplot(grid[0, :])
    where = np.arange(len(shown))
    for offset, key, name in ((-0.2, "a_accuracy", a_name), (0.2, "b_accuracy", b_name)):
        ax.bar(where + offset, [100 * rows[k][key] for k in shown], width=0.4, label=name)
    ax.set_xticks(
        where,
        [_short(rows[k]["class"], 12) for k in shown],
        fontsize=7,
        rotation=30 if len(shown) > 10 else 0,
    )
    ax.set_ylabel("accuracy (%)")
    low = min(100 * min(rows[k][key] for k in shown) for key in ("a_accuracy", "b_accuracy"))
    ax.set_ylim(max(0, low - 5), 112)  # room above the bars for the legend
    ax.set_yticks([t for t in ax.get_yticks() if t <= 100])
    ax.legend(fontsize=8, loc="upper right", ncol=2, frameon=False)
    summary = against.to_dict()
    ax.set_title(
        f"{a_name} {100 * summary['a_accuracy']:.2f}% vs {b_name} {100 * summary['b_accuracy']:.2f}% on "
        f"{_scope(report)}\nonly {a_name} right {summary['only_a']:,}, only {b_name} right "
        f"{summary['only_b']:,} (McNemar p = {summary['mcnemar_p']:.2g})",
        fontsize=9,
    )
    for row, (mask, who, other) in enumerate(
        ((against.only_a, a_name, b_name), (against.only_b, b_name, a_name))
    ):
        hits = mask.nonzero().flatten().tolist()
        # Spread over the split: a folder's test split is sorted by class, its first hits all one class.
        picked = [hits[i] for i in spaced_indices(len(hits), min(EXAMPLES, len(hits)))]
        for col in range(EXAMPLES):
            ax = fig.add_subplot(grid[row + 1, col])
            if col >= len(picked):
                ax.axis("off")
                continue
            i = picked[col]
            _image(ax, displayable(against.images[i]))
            classes = report.classes
            wrong = against.b_predictions[i] if row == 0 else against.a_predictions[i]
            said = f"{_short(other, 8)}: {_short(classes[int(wrong)])}"
            _bare(ax, f"{_short(classes[int(against.labels[i])])}\n{said}", 7)
            if col == 0:
                ax.set_ylabel(f"only {_short(who, 14)}\nright", fontsize=8)
