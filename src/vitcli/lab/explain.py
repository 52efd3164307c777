"""What a ViT's attention looks at, for chosen images of a checkpoint (`vitcli attention`): predictions,
the [CLS] query's maps per block and head, and attention rollout (computed in `models/attention_maps.py`).

Everything here computes, on tensors; `attention_figure` draws the pictures (and imports this module, never
the other way round), `cli/tables` the terminal preview, and `cli/attention` is the command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from vitcli.data import load_splits
from vitcli.data.datasets import DatasetInfo, Split
from vitcli.errors import ConfigError, DataError
from vitcli.lab.class_matching import fit_data
from vitcli.models.attention_maps import cls_attention, extract, query_name, require_attention, rollout_map
from vitcli.models.token_grid import require_tokens
from vitcli.runtime.devices import resolve_device
from vitcli.training.checkpoint import Checkpoint, checkpoint_file, load_checkpoint


@dataclass
class ImageAttention:
    """One image's prediction and attention maps; maps are on the patch grid, as float32 on the CPU."""

    source: str  # "test[17]" or the file's path
    image: Tensor  # uint8 (C, H, W): what the model saw, before normalisation
    label: int | None  # the true class when the image comes from the data set
    probabilities: Tensor  # (classes,)
    cls_attention: Tensor  # (blocks, heads, rows, cols): [CLS] query over the patch tokens
    rollout: Tensor  # (rows, cols): the [CLS] row of the rolled-out attention, over the patches
    query: str = "[CLS]"  # whose attention the maps are: "[CLS]", or "mean" for a model without it

    @property
    def prediction(self) -> int:
        return int(self.probabilities.argmax())

    @property
    def probability(self) -> float:
        return float(self.probabilities.max())


def explain(
    checkpoint: Checkpoint,
    images: Tensor,
    sources: list[str],
    labels: list[int | None],
    *,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    batch_size: int = 256,
) -> list[ImageAttention]:
    """Predictions, [CLS] maps and rollouts for uint8 images shaped like the checkpoint's data."""
    model = checkpoint.model
    device = next(model.parameters()).device
    preprocess = checkpoint.preprocessing.on(device)  # exactly as in training
    grid, prefix = tuple(model.grid_size), model.num_prefix_tokens
    query = query_name(prefix)
    results = []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        logits, weights = extract(model, preprocess(batch.to(device)))
        maps = cls_attention(weights, grid, prefix).cpu()
        rolled = rollout_map(weights, grid, prefix, head_fusion, discard_ratio).cpu()
        probabilities = logits.softmax(dim=-1).cpu()
        for i in range(len(batch)):
            n = start + i
            results.append(
                ImageAttention(sources[n], batch[i], labels[n], probabilities[i], maps[i], rolled[i], query)
            )
    return results


# --- choosing images ---------------------------------------------------------------------------------


@dataclass
class Chosen:
    images: Tensor  # uint8 (B, C, H, W)
    sources: list[str]
    labels: list[int | None]  # the model's class index of each image, when known
    notes: list[str] = field(default_factory=list)  # how the data's classes were paired with the model's


def dataset_split(
    checkpoint: Checkpoint, split: str, data_dir: str | None = None, dataset: str | None = None
) -> tuple[Split, DatasetInfo, str]:
    """A split of the checkpoint's own data set (or of `dataset`), split as in training; the data set's
    description and name, for `vitcli.lab.class_matching.fit_data` to pair its classes with a model's."""
    data_cfg = checkpoint.config.data.for_evaluation(dataset, data_dir)
    data = load_splits(data_cfg)
    return data.get(split), data.info, data_cfg.dataset


def from_dataset(
    checkpoint: Checkpoint,
    split: str,
    indices: list[int] | None = None,
    random: int | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    dataset: str | None = None,
    match_by_position: bool = False,
) -> Chosen:
    """Images of the checkpoint's own data set (or of `dataset`, of the same shape), split as in training,
    by index or drawn at random. Labels are the model's class indices: the data's classes are paired with
    the model's by name (`vitcli.lab.class_matching`), or by position with `match_by_position`."""
    chosen, info, name = dataset_split(checkpoint, split, data_dir, dataset)
    classes = fit_data(checkpoint.info, info, name, match_by_position)
    n = len(chosen)
    if random is not None:
        if not 0 < random <= n:
            raise ConfigError(f"--random must be between 1 and {n} (the {split} split's size), got {random}")
        generator = torch.Generator().manual_seed(seed)
        indices = torch.randperm(n, generator=generator)[:random].tolist()
    indices = indices or [0]
    bad = [i for i in indices if not 0 <= i < n]
    if bad:
        raise ConfigError(
            f"--index {bad[0]} is out of range: the {split} split has {n} images (0 to {n - 1})"
        )
    labels = classes.apply(chosen.labels[indices]).tolist()
    notes = [classes.note] if classes.note else []
    return Chosen(chosen.images[indices], [f"{split}[{i}]" for i in indices], labels, notes)


def from_files(paths: list[Path], info: DatasetInfo) -> Chosen:
    """Image files converted to the checkpoint's channels and size (bilinear resize when they differ)."""
    mode = "L" if info.channels == 1 else "RGB"
    if info.channels not in (1, 3):
        raise ConfigError(
            f"--image needs a model trained on 1- or 3-channel images; this one has {info.channels}"
        )
    arrays = []
    for path in paths:
        try:
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img).convert(mode)  # a phone's photo, turned upright
                if img.size != (info.width, info.height):
                    img = img.resize((info.width, info.height), Image.BILINEAR)
                array = np.asarray(img, dtype=np.uint8)
        except FileNotFoundError:
            raise DataError(f"image file {path} does not exist") from None
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{path} is not an image PIL can read ({e}); pass a PNG or JPEG file") from None
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    return Chosen(torch.from_numpy(np.stack(arrays)), [str(p) for p in paths], [None] * len(paths))


# --- a checkpoint from start to finish ---------------------------------------------------------------


@dataclass
class AttentionReport:
    checkpoint: Path
    classes: list[str]
    grid_size: tuple[int, int]
    head_fusion: str
    discard_ratio: float
    images: list[ImageAttention]
    pictures: list[Path] = field(default_factory=list)  # one PNG per image once drawn (attention_figure)
    notes: list[str] = field(default_factory=list)  # lines for the user (how classes were paired)

    def to_dict(self) -> dict:
        """Everything as plain lists, for other tools (`vitcli attention --json`)."""
        return {
            "checkpoint": str(self.checkpoint),
            "classes": self.classes,
            "grid_size": list(self.grid_size),
            "head_fusion": self.head_fusion,
            "discard_ratio": self.discard_ratio,
            "images": [
                {
                    "source": r.source,
                    "label": r.label,
                    "prediction": r.prediction,
                    "probability": r.probability,
                    "probabilities": r.probabilities.tolist(),
                    "query": r.query,  # whose attention: "[CLS]", or "mean" without a [CLS] token
                    "cls_attention": r.cls_attention.tolist(),  # [block][head][row][col]
                    "rollout": r.rollout.tolist(),  # [row][col]
                    "picture": str(picture) if picture else None,
                }
                for r, picture in zip(self.images, self.pictures or [None] * len(self.images))
            ],
        }


def explain_checkpoint(
    path: str | Path,
    *,
    indices: list[int] | None = None,
    files: list[Path] | None = None,
    random: int | None = None,
    split: str = "test",
    seed: int = 0,
    data_dir: str | None = None,
    dataset: str | None = None,
    match_by_position: bool = False,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
    device: str = "auto",
) -> AttentionReport:
    """Attention maps for images of a checkpoint's data set, or of `dataset` (`indices` or `random`), or
    image files. `attention_figure.draw_report` turns the report into pictures."""
    if sum(x is not None and x != [] for x in (indices, files, random)) > 1:
        raise ConfigError("choose images one way: --index, --image or --random")
    file = checkpoint_file(path)
    checkpoint = load_checkpoint(file, resolve_device(device))
    require_attention(checkpoint.model)
    # One token: every map would be one uniform cell; refused before any data is read. 2 or more are drawn.
    require_tokens(checkpoint.model, checkpoint.config.model, checkpoint.info, str(path))
    chosen = (
        from_files(files, checkpoint.info)
        if files
        else from_dataset(checkpoint, split, indices, random, seed, data_dir, dataset, match_by_position)
    )
    results = explain(
        checkpoint,
        chosen.images,
        chosen.sources,
        chosen.labels,
        head_fusion=head_fusion,
        discard_ratio=discard_ratio,
    )
    grid = tuple(checkpoint.model.grid_size)
    return AttentionReport(
        file, checkpoint.info.classes, grid, head_fusion, discard_ratio, results, notes=chosen.notes
    )
