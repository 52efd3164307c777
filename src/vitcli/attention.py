"""What a ViT's attention looks at: the [CLS] query's weights per block and head, and attention rollout.

Any model that follows the in-house ViT's contract works here, the fine-tuned timm ViTs included:

    model(x, return_attention=True) -> (logits, [one (batch, heads, tokens, tokens) tensor per block])
    model.grid_size          (rows, cols) of the patch grid
    model.num_prefix_tokens  tokens before the patches ([CLS], a distillation token, registers); 0 for a
                             model that pools its tokens instead of reading [CLS] (--pool gap or seq)

The maps show what the token the classifier reads attends to: row 0, the [CLS] query. A model without
[CLS] reads the mean (or a weighted sum) of all its tokens, so its maps are the mean of all query rows.

Rollout follows Abnar & Zuidema 2020 ("Quantifying Attention Flow in Transformers", arXiv:2005.00928):
each block's heads are fused into one matrix, the identity is added for the residual connection, rows
are renormalised, and the matrices are multiplied from the first block to the last. The [CLS] row of the
product says how much each patch fed the token the classifier reads.

Everything here computes, on tensors; `attention_figure` draws the pictures (and imports this module, never
the other way round), `report` the terminal preview, and `cli/attention` is the command.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from vitcli.checkpoint import Checkpoint, checkpoint_file, load_checkpoint
from vitcli.classes import fit_data
from vitcli.data import load_splits
from vitcli.data.datasets import DatasetInfo, Split
from vitcli.devices import resolve_device
from vitcli.errors import CheckpointError, ConfigError, DataError

# How rollout fuses a block's heads into one matrix: (B, heads, N, N) -> (B, N, N).
FUSE = {
    "mean": lambda weights: weights.mean(dim=1),
    "max": lambda weights: weights.amax(dim=1),
    "min": lambda weights: weights.amin(dim=1),
}
HEAD_FUSIONS = tuple(FUSE)


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


def has_attention(model: nn.Module) -> bool:
    """Whether `model` follows the attention contract above (the CNN does not)."""
    return hasattr(model, "grid_size") and hasattr(model, "num_prefix_tokens")


def query_name(num_prefix_tokens: int) -> str:
    """Whose attention the maps show: "[CLS]", or "mean" for a model read through its mean query."""
    return "[CLS]" if num_prefix_tokens else "mean"


def require_attention(model: nn.Module) -> None:
    """A CheckpointError unless `model` follows the attention contract above (the CNN does not)."""
    if not has_attention(model):
        raise CheckpointError(
            f"this checkpoint is a {type(model).__name__}, which has no attention to show; "
            "vitcli attention works on ViT checkpoints (vitcli train --model vit, or vitcli finetune)"
        )


def extract(model: nn.Module, images: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Logits and the per-block attention weights for a batch of normalised images."""
    require_attention(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, weights = model(images, return_attention=True)
    finally:
        model.train(was_training)
    return logits.float(), [w.float() for w in weights]


def query_row(attention: Tensor, num_prefix_tokens: int) -> Tensor:
    """(..., N, N) -> (..., patches): the [CLS] query's row over the patch tokens, or, with no prefix
    token, the mean of all rows (what a model that pools its tokens reads)."""
    if num_prefix_tokens == 0:
        return attention.mean(dim=-2)
    return attention[..., 0, num_prefix_tokens:]


def cls_attention(weights: list[Tensor], grid_size: tuple[int, int], num_prefix_tokens: int = 1) -> Tensor:
    """(batch, blocks, heads, rows, cols): row 0 of each block's attention (the [CLS] query; the mean
    query without one), its columns for the patch tokens laid out on the patch grid. The weights the
    [CLS] query puts on the prefix tokens themselves are left out, so a map sums to 1 minus those."""
    stacked = torch.stack(weights, dim=1)  # (B, blocks, heads, N, N)
    return query_row(stacked, num_prefix_tokens).reshape(*stacked.shape[:3], *grid_size)


def fuse_heads(weights: Tensor, head_fusion: str) -> Tensor:
    """(B, heads, N, N) -> (B, N, N) by the mean, max or min over heads."""
    if head_fusion not in FUSE:
        raise ConfigError(f"--head-fusion must be one of {', '.join(HEAD_FUSIONS)}, got {head_fusion!r}")
    return FUSE[head_fusion](weights)


def rollout(weights: list[Tensor], head_fusion: str = "mean", discard_ratio: float = 0.0) -> Tensor:
    """Attention rollout (B, N, N) over all blocks.

    `discard_ratio` zeroes that fraction of the smallest fused weights in each block (never the [CLS]
    to [CLS] weight) before the identity is added: a way to keep only the strong paths, as in Jacob
    Gildenblat's widely used implementation of the method.
    """
    if not 0 <= discard_ratio < 1:
        raise ConfigError(f"--discard must be in [0, 1), got {discard_ratio}")
    B, _, N, _ = weights[0].shape
    eye = torch.eye(N, dtype=weights[0].dtype, device=weights[0].device)
    result = eye.expand(B, N, N)
    for block in weights:
        fused = fuse_heads(block, head_fusion)
        drop = int(N * N * discard_ratio)
        if drop:
            flat = fused.reshape(B, N * N).clone()
            lowest = flat.topk(drop, dim=-1, largest=False).indices
            # Index 0 is [CLS] -> [CLS]; keeping it keeps every row of the product non-empty.
            flat.scatter_(1, lowest, torch.where(lowest == 0, flat.gather(1, lowest), 0.0))
            fused = flat.reshape(B, N, N)
        # The residual stream carries half the signal past attention (the paper's 0.5 A + 0.5 I).
        a = (fused + eye) / 2
        a = a / a.sum(dim=-1, keepdim=True)
        result = a @ result
    return result


def rollout_map(
    weights: list[Tensor],
    grid_size: tuple[int, int],
    num_prefix_tokens: int = 1,
    head_fusion: str = "mean",
    discard_ratio: float = 0.0,
) -> Tensor:
    """(batch, rows, cols): the [CLS] row (the mean row without one) of the rollout over the patches."""
    rolled = rollout(weights, head_fusion, discard_ratio)
    return query_row(rolled, num_prefix_tokens).reshape(-1, *grid_size)


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
    description and name, for `vitcli.classes.fit_data` to pair its classes with a model's."""
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
    the model's by name (`vitcli.classes`), or by position with `match_by_position`."""
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
                img = img.convert(mode)
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
