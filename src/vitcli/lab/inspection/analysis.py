"""A checkpoint from start to finish for `vitcli inspect`: which figures apply to its model, one pass over
a sample of a split that feeds every figure needing images, and the numbers as plain lists for --json.
`figures.draw_report` turns the report into PNGs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from vitcli.errors import ConfigError
from vitcli.lab.class_matching import fit_data, match_classes
from vitcli.lab.explain import dataset_split
from vitcli.lab.inspection.against import Disagreement, predict
from vitcli.lab.inspection.distance import MeanDistance, uniform_distance
from vitcli.lab.inspection.evolution import Evolution, load_evolution
from vitcli.lab.inspection.filters import Components, first_filters, patch_components
from vitcli.lab.inspection.per_class import ClassAverage
from vitcli.lab.inspection.positions import position_table, similarity_maps
from vitcli.models.attention_maps import cls_attention, extract, has_attention, query_name
from vitcli.models.token_grid import require_tokens
from vitcli.runtime.devices import resolve_device
from vitcli.settings.choices import FIGURES, INSPECT_IMAGES
from vitcli.settings.suggest import did_you_mean
from vitcli.training.checkpoint import Checkpoint, checkpoint_file, load_checkpoint

NEEDS_IMAGES = ("distance", "classes")
ONE_CELL = ("distance", "positions", "classes")  # a one-token model's would be one cell (models/token_grid)
DEFAULT_IMAGES = INSPECT_IMAGES  # for the attention figures; --against takes the whole split unless told
ATTENTION_BYTES = 256 * 2**20  # the attention weights one batch may hold: batches shrink for large models


@dataclass
class Sample:
    """The images of a split the figures use, labelled in the model's class order."""

    split: str
    images: Tensor  # uint8 (N, C, H, W)
    labels: Tensor  # (N,)
    sources: list[str]
    size: int  # the split's size
    notes: list[str] = field(default_factory=list)


@dataclass
class InspectReport:
    checkpoint: Path
    classes: list[str]
    model: str  # the module's class name
    grid_size: tuple[int, int] | None
    query: str  # "[CLS]", or "mean" for a model that pools its tokens
    sample: Sample | None = None
    distance: Tensor | None = None  # (blocks, heads), pixels
    cell: tuple[float, float] | None = None  # a grid cell's (height, width) in pixels
    similarity: Tensor | None = None  # (rows, cols, rows, cols)
    components: Components | None = None
    class_maps: Tensor | None = None  # (classes, blocks, rows, cols)
    class_images: Tensor | None = None  # (classes, C, H, W): each class's mean image
    class_counts: Tensor | None = None  # (classes,)
    evolution: Evolution | None = None
    against: Disagreement | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # figure -> why it does not apply
    pictures: dict[str, list[Path]] = field(default_factory=dict)  # figure -> its PNGs, once drawn
    notes: list[str] = field(default_factory=list)

    @property
    def uniform_distance(self) -> float | None:
        if self.grid_size is None or self.cell is None:
            return None
        return uniform_distance(self.grid_size, self.cell)


def why_not(model: nn.Module, figure: str) -> str | None:
    """Why `figure` does not apply to `model`, or None when it does."""
    if figure in NEEDS_IMAGES and not has_attention(model):
        return f"a {type(model).__name__} has no attention"
    try:  # the lookups that fail with the reason, not the figures' computation
        if figure == "positions":
            position_table(model)
        elif figure == "filters":
            first_filters(model)
    except ConfigError as e:
        return str(e)
    return None


def choose_figures(model: nn.Module, figures: list[str] | None) -> tuple[list[str], dict[str, str]]:
    """The figures to draw and the skipped ones with their reasons. Asked-for figures must apply; by
    default every figure that applies is drawn, and at least one must."""
    for name in figures or []:
        if name not in FIGURES:
            raise ConfigError(
                f"unknown --figure {name!r}; {did_you_mean(name, FIGURES)}use one of {', '.join(FIGURES)}"
            )
    reasons = {name: why_not(model, name) for name in (figures or FIGURES)}
    skipped = {name: why for name, why in reasons.items() if why}
    if figures and skipped:
        name, why = next(iter(skipped.items()))
        raise ConfigError(f"--figure {name} does not apply to this checkpoint: {why}")
    chosen = [name for name in reasons if name not in skipped]
    if not chosen:
        raise ConfigError(
            f"none of inspect's figures applies to a {type(model).__name__} (they show a ViT's attention, "
            "positions and patch filters); compare it with a ViT through --against"
        )
    return chosen, skipped


def sample_split(
    checkpoint: Checkpoint,
    split: str,
    count: int | None,
    seed: int,
    data_dir: str | None,
    dataset: str | None,
    match_by_position: bool,
) -> Sample:
    """`count` images of the split drawn with `seed` (all of it when None or more than it holds)."""
    chosen, info, name = dataset_split(checkpoint, split, data_dir, dataset)
    classes = fit_data(checkpoint.info, info, name, match_by_position)
    n, notes = len(chosen), [classes.note] if classes.note else []
    if count is None or count >= n:
        indices = torch.arange(n)
    else:  # a seeded draw: a folder's split is sorted by class, so its first images are of one class
        indices = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count].sort().values
    labels = classes.apply(chosen.labels[indices].cpu())
    sources = [f"{split}[{i}]" for i in indices.tolist()]
    return Sample(split, chosen.images[indices].cpu(), labels, sources, n, notes)


def attention_pass(report: InspectReport, model: nn.Module, preprocess, figures: list[str]) -> None:
    """One pass over the sample, batch by batch, accumulating the mean distance and the class maps."""
    sample = report.sample
    device = next(model.parameters()).device
    grid, prefix = tuple(model.grid_size), model.num_prefix_tokens
    height, width = sample.images.shape[-2:]
    report.cell = (height / grid[0], width / grid[1])
    distance = MeanDistance(grid, prefix, report.cell) if "distance" in figures else None
    classes = ClassAverage(len(report.classes)) if "classes" in figures else None
    start, batch = 0, 1  # the first batch of one image measures the attention's size
    while start < len(sample.images):
        images = sample.images[start : start + batch]
        _, weights = extract(model, preprocess(images.to(device)))
        if distance is not None:
            distance.add(weights)
        if classes is not None:
            maps = cls_attention(weights, grid, prefix).mean(dim=2)  # the mean of the heads
            classes.add(maps, images, sample.labels[start : start + len(images)])
        if start == 0:
            per_image = sum(w.numel() * w.element_size() for w in weights)
            batch = max(1, min(256, ATTENTION_BYTES // (4 * per_image)))  # stacking copies it a few times
        start += len(images)
    if distance is not None:
        report.distance = distance.result()
    if classes is not None:
        report.class_maps, report.class_images, report.class_counts = classes.result()


@dataclass
class Other:
    """The --against checkpoint, and how its classes pair with A's."""

    file: Path
    checkpoint: Checkpoint
    to_a: Tensor  # B's class k is A's class to_a[k]
    note: str | None  # how the classes were paired, when not name for name in the same order


def load_other(a: Checkpoint, path: str | Path, device, by_position: bool) -> Other:
    """The --against checkpoint, refused at once unless it takes A's images; its classes are paired with
    A's by name (or in order, with --match-by-position), as `vitcli eval` pairs a data set's."""
    file = checkpoint_file(path)
    b = load_checkpoint(file, device)

    def shape(info) -> tuple[int, int, int]:
        return (info.channels, info.height, info.width)

    if shape(b.info) != shape(a.info):
        raise ConfigError(
            f"{file} was trained on {b.info.describe()}, the checkpoint it is compared with on "
            f"{a.info.describe()}; --against needs two models of the same image shape"
        )
    pairing = match_classes(
        b.info.classes, a.info.classes, by_position, "the inspected checkpoint", f"--against {file}"
    )
    to_a = torch.empty(len(pairing.mapping), dtype=torch.long)
    to_a[torch.tensor(pairing.mapping)] = torch.arange(len(pairing.mapping))  # the pairing's inverse
    return Other(file, b, to_a, pairing.note and f"--against: {pairing.note}")


def against_pass(report: InspectReport, a: Checkpoint, other: Other) -> None:
    """Both models' predictions on the sample, each read in A's class order."""
    sample = report.sample
    report.against = Disagreement(
        report.checkpoint,
        other.file,
        sample.split,
        report.classes,
        sample.sources,
        sample.images,
        sample.labels,
        predict(a, sample.images),
        other.to_a[predict(other.checkpoint, sample.images)],
    )


def inspect_checkpoint(
    path: str | Path,
    *,
    figures: list[str] | None = None,
    evolution: bool = False,
    against: str | Path | None = None,
    split: str = "test",
    images: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    dataset: str | None = None,
    match_by_position: bool = False,
    components: int = 28,
    device: str = "auto",
) -> InspectReport:
    """The numbers behind inspect's figures for a checkpoint (or its run directory). With neither
    `evolution` nor `against`, every figure that applies; otherwise the `figures` asked for, if any."""
    if images is not None and images < 1:
        raise ConfigError(f"--images must be 1 or more, got {images}")
    file = checkpoint_file(path)
    torch_device = resolve_device(device)
    checkpoint = load_checkpoint(file, torch_device)
    other = load_other(checkpoint, against, torch_device, match_by_position) if against else None
    model = checkpoint.model
    # A one-token model's attention and position figures would be one uniform cell each: refused before
    # anything is drawn, the defaults too. --figure filters and --against read no attention and still work.
    asked = figures or ([] if evolution or against else list(FIGURES))
    if evolution or any(name in ONE_CELL for name in asked):
        require_tokens(model, checkpoint.config.model, checkpoint.info, str(path))
    report = InspectReport(
        file,
        checkpoint.info.classes,
        type(model).__name__,
        tuple(model.grid_size) if hasattr(model, "grid_size") else None,
        query_name(getattr(model, "num_prefix_tokens", 1)),
    )
    wanted: list[str] = []
    if figures or not (evolution or against):
        wanted, report.skipped = choose_figures(model, figures or None)
    if evolution:  # read first: a run without snapshots is told so before any data is loaded
        report.evolution = load_evolution(file.parent)
    if "positions" in wanted:
        report.similarity = similarity_maps(model)
    if "filters" in wanted:
        report.components = patch_components(model, components)
    needs_images = [name for name in wanted if name in NEEDS_IMAGES]
    if needs_images or against:
        count = images if images is not None or against else DEFAULT_IMAGES
        report.sample = sample_split(checkpoint, split, count, seed, data_dir, dataset, match_by_position)
        report.notes += report.sample.notes
    if needs_images:
        attention_pass(report, model, checkpoint.preprocessing.on(torch_device), needs_images)
    if other is not None:
        report.notes += [other.note] if other.note else []
        against_pass(report, checkpoint, other)
    return report
