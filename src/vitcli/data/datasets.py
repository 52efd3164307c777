"""Data sets as uint8 tensors: which ones exist, where their files are, and how they are split.

Each source is decoded once into (images uint8 (N, C, H, W), labels int64 (N,)) and cached on disk, so
later runs start in a fraction of a second and training never touches PIL or DataLoader workers.
MNIST, Fashion-MNIST and CIFAR-10/100 come through torchvision's own dataset classes (which download
them for users); `folder:PATH` reads an image folder with `train/`, `test/` and optional `val/`
subfolders of class folders, as torchvision's ImageFolder does (`vitcli.data.folders` says how). Every
source's labels are checked when it is loaded, before any training. A plain folder of class folders
(no `train/` and `test/`) is split with a fixed seed: PLAIN_TEST_FRACTION of each class's images held out
as the test split.

With `--subset N` the validation and test splits are capped too (`eval_cap`), so that a quick try stays
quick; `Splits.capped` says which were and how large they were. `--classes` and `--per-class` choose
classes and images per class (`selection.py`): validation is then capped as a subset's, test stays whole.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchvision import datasets as tvd

from vitcli.data import cache, folders
from vitcli.data.selection import chosen_classes, per_class, relabelled
from vitcli.data.stratified import draw, eval_cap
from vitcli.errors import DataError, one_line
from vitcli.settings.choices import SPLITS
from vitcli.settings.config import DataConfig
from vitcli.settings.suggest import did_you_mean


@dataclass
class DatasetInfo:
    """Facts about a data set that a model, a checkpoint and the batches need: its shape, its classes and
    its family. How a model's inputs are normalised is the model's (`vitcli.data.preprocessing`)."""

    name: str
    channels: int
    height: int
    width: int
    classes: list[str]
    family: str  # "digits" (translation augmentation) or "natural" (crop with padding and flips)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.height}x{self.width}x{self.channels} images with {len(self.classes)} classes"


@dataclass(frozen=True)
class ChannelStats:
    """Per-channel mean and std of a data set's training pixels scaled to [0, 1]: the published constants
    for the torchvision sets, computed for an image folder. Models trained from scratch normalise with
    them."""

    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass
class Split:
    images: Tensor  # uint8 (N, C, H, W)
    labels: Tensor  # int64 (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: Tensor) -> Split:
        """The images (and their labels) at `index`."""
        return Split(self.images[index], self.labels[index])


@dataclass
class Splits:
    info: DatasetInfo
    stats: ChannelStats
    train: Split
    val: Split | None
    test: Split
    capped: dict[str, tuple[int, int]] = field(default_factory=dict)  # --subset: split -> (kept, of)

    def get(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; {did_you_mean(name, SPLITS)}use {', '.join(SPLITS)}")
        split = getattr(self, name)
        if split is None:
            raise DataError("this data set has no validation split (val_size is 0); use --split test")
        return split


PLAIN_TEST_FRACTION = 0.2  # of each class's images, the test split of a folder without train/ and test/
PLAIN_SPLIT_SEED = 0
PROGRESS_FROM = 5000  # decoding a folder of more images than this says how far it is, every tenth


def default_data_dir() -> Path:
    if os.environ.get("VITCLI_DATA_DIR"):
        return Path(os.environ["VITCLI_DATA_DIR"]).expanduser()
    return cache.cache_root() / "data"


def load_splits(
    cfg: DataConfig, download: bool = True, on_note: Callable[[str], None] | None = None
) -> Splits:
    """The train / val / test splits for a data config: the classes chosen, validation held out of train
    (seeded, the same for every run with the same val_size), then the training images chosen (per class
    or a subset), validation (unless val_size is given) and a subset's test split capped at `eval_cap`
    images, drawn with fixed seeds that cover every class. `on_note` gets a line for the user when
    something was put right on the way (a damaged cache file decoded again)."""
    data_dir = Path(cfg.data_dir).expanduser() if cfg.data_dir else None
    info, stats, train, val, test = _load_source(cfg.dataset, data_dir, download, on_note)
    check_labels(info, {"train": train, "val": val, "test": test}, _damaged(cfg.dataset, data_dir))
    if cfg.classes is not None:
        chosen = chosen_classes(cfg.classes, info.classes, info.name)
        train, val, test = (_of_classes(split, chosen, len(info.classes)) for split in (train, val, test))
        info = dataclasses.replace(info, classes=[info.classes[i] for i in chosen])
    if val is None:
        val_size = default_val_size(len(train)) if cfg.val_size is None else cfg.val_size
        if val_size >= len(train):
            raise DataError(
                f"--val-size {val_size} leaves no training images ({len(train)} in the training set); "
                "use a smaller --val-size, or 0 to train on every image"
            )
        if val_size > 0:
            # A fixed seed, not the training seed: runs that differ only in --seed see the same split.
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
            val, train = train.take(order[:val_size]), train.take(order[val_size:].sort().values)
    capped: dict[str, tuple[int, int]] = {}
    if cfg.per_class is not None:
        train = train.take(per_class(train.labels, cfg.per_class, info.classes, info.name))
        cap = eval_cap(len(train))
        if val is not None and cfg.val_size is None and len(val) > cap:  # as a subset's (below)
            capped["val"], val = (cap, len(val)), _drawn(val, cap, seed=2)
    if cfg.subset is not None:
        if cfg.subset > len(train):
            raise DataError(f"--subset {cfg.subset} is more than the {len(train)} training images there are")
        # The first N of a seeded shuffle, so a subset covers every class.
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(1))[: cfg.subset]
        train = train.take(order)
        cap = eval_cap(cfg.subset)
        if val is not None and cfg.val_size is None and len(val) > cap:
            capped["val"], val = (cap, len(val)), _drawn(val, cap, seed=2)
        if len(test) > cap:
            capped["test"], test = (cap, len(test)), _drawn(test, cap, seed=3)
    return Splits(info, stats, train, val, test, capped)


def _of_classes(split: Split | None, chosen: list[int], classes: int) -> Split | None:
    if split is None:
        return None
    keep, labels = relabelled(split.labels, chosen, classes)
    return Split(split.images[keep], labels)


def _drawn(split: Split, count: int, seed: int) -> Split:
    return split.take(draw(split.labels, count, seed))


def check_labels(info: DatasetInfo, splits: dict[str, Split | None], damaged: str) -> None:
    """A DataError unless every split has one label per image, images of the data set's shape, and labels
    of its classes (0 to classes - 1), and the training split has every class. `damaged` says what to do
    about damaged files."""
    n, shape = len(info.classes), (info.channels, info.height, info.width)
    for name, split in splits.items():
        if split is None:
            continue
        if split.images.ndim != 4 or tuple(split.images.shape[1:]) != shape:
            raise DataError(
                f"the {name} images of {info.name} are {tuple(split.images.shape[1:])} (channels, height, "
                f"width), not {shape}; {damaged}"
            )
        if split.labels.shape != (len(split.images),):
            raise DataError(
                f"the {name} split of {info.name} has {len(split.images)} images but "
                f"{split.labels.numel()} labels; {damaged}"
            )
        bad = split.labels[(split.labels < 0) | (split.labels >= n)]
        if len(bad):
            raise DataError(
                f"the {name} labels of {info.name} include {int(bad[0])} ({len(bad)} out of range), but it "
                f"has {n} classes (labels 0 to {n - 1}); {damaged}"
            )
    unused = sorted(set(range(n)) - set(splits["train"].labels.unique().tolist()))
    if unused:
        raise DataError(
            f"no training image of {info.name} is labelled {info.classes[unused[0]]!r} (class {unused[0]}"
            f"{f', and {len(unused) - 1} more classes' if len(unused) > 1 else ''}); {damaged}"
        )


def _damaged(dataset: str, data_dir: Path | None) -> str:
    """What to do about a source whose decoded labels are wrong."""
    if dataset in TORCHVISION_SOURCES:
        folder = (data_dir or default_data_dir()) / TORCHVISION_SOURCES[dataset].folder
        return (
            f"the files in {folder} are damaged: replace them with the original files, or delete them "
            "so that vitcli downloads them again"
        )
    tensors = cache.cache_root() / "tensors"
    return f"the decoded copy of {dataset} is wrong: delete the cached tensors in {tensors} and run again"


def default_val_size(train_size: int) -> int:
    """5,000 images for the 50k/60k sets, as is usual; a tenth for smaller sets."""
    return 5000 if train_size >= 50_000 else train_size // 10


Source = tuple[DatasetInfo, ChannelStats, Split, Split | None, Split]


def _load_source(
    dataset: str, data_dir: Path | None, download: bool, on_note: Callable[[str], None] | None = None
) -> Source:
    if dataset.startswith("folder:"):
        return _load_folder(Path(dataset[len("folder:") :]).expanduser(), on_note)
    if dataset not in TORCHVISION_SOURCES:
        raise DataError(
            f"unknown dataset {dataset!r}; {did_you_mean(dataset, TORCHVISION_SOURCES)}"
            f"use one of {', '.join(TORCHVISION_SOURCES)} or folder:PATH"
        )
    return _load_torchvision(dataset, data_dir or default_data_dir(), download, on_note)


# --- torchvision data sets -------------------------------------------------------------------------


def _trusting(base: type) -> type:
    """torchvision's CIFAR class `base`, trusting batch files already on disk.

    torchvision checks the MD5 of every batch file before loading, so a copy re-packed by a user (or a
    test's small file in the same pickle format) would not load. Downloads are still checked: the archive
    keeps its MD5.
    """
    return type(
        base.__name__,
        (base,),
        {
            "train_list": [[name, None] for name, _ in base.train_list],
            "test_list": [[name, None] for name, _ in base.test_list],
            "meta": {**base.meta, "md5": None},
        },
    )


@dataclass(frozen=True)
class TorchvisionSource:
    """A data set that torchvision's own class reads (and downloads) from `root/folder/files`."""

    dataset_class: type
    folder: str
    files: tuple[str, ...]
    family: str
    mean: tuple[float, ...]  # the usual constants: mean and std of the training pixels
    std: tuple[float, ...]


_IDX = (
    "raw/train-images-idx3-ubyte",
    "raw/train-labels-idx1-ubyte",
    "raw/t10k-images-idx3-ubyte",
    "raw/t10k-labels-idx1-ubyte",
)
TORCHVISION_SOURCES = {
    "mnist": TorchvisionSource(tvd.MNIST, "MNIST", _IDX, "digits", (0.1307,), (0.3081,)),
    "fashion-mnist": TorchvisionSource(
        tvd.FashionMNIST, "FashionMNIST", _IDX, "digits", (0.2860,), (0.3530,)
    ),
    "cifar10": TorchvisionSource(
        _trusting(tvd.CIFAR10),
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
        "natural",
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
    ),
    "cifar100": TorchvisionSource(
        _trusting(tvd.CIFAR100),
        "cifar-100-python",
        ("train", "test", "meta"),
        "natural",
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
    ),
}


def _load_torchvision(
    name: str, root: Path, download: bool, on_note: Callable[[str], None] | None = None
) -> Source:
    source = TORCHVISION_SOURCES[name]
    source_dir = root / source.folder

    def decode() -> dict:
        out = {}
        for split, train in (("train", True), ("test", False)):
            ds = _open_torchvision(name, root, train, download)
            images = torch.as_tensor(np.asarray(ds.data))
            images = (
                images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
            )  # to (N, C, H, W)
            out[f"{split}_images"] = images.contiguous()
            out[f"{split}_labels"] = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
        return {"tensors": out, "classes": list(ds.classes)}

    if not source_dir.is_dir():
        # First use: let torchvision download before the files are fingerprinted for the cache.
        _open_torchvision(name, root, False, download)
    entry = cache.cached(name, source_dir, decode, on_note)
    t = entry["tensors"]
    _, channels, height, width = t["train_images"].shape
    info = DatasetInfo(name, channels, height, width, entry["classes"], source.family)
    stats = ChannelStats(source.mean, source.std)
    return (
        info,
        stats,
        Split(t["train_images"], t["train_labels"]),
        None,
        Split(t["test_images"], t["test_labels"]),
    )


def _open_torchvision(name: str, root: Path, train: bool, download: bool):
    source = TORCHVISION_SOURCES[name]
    try:
        return source.dataset_class(root=str(root), train=train, download=download)
    except Exception as e:  # noqa: BLE001 - torchvision raises RuntimeError, URLError, OSError, ...
        reason = one_line(e)
        source_dir = root / source.folder
        if all((source_dir / f).is_file() for f in source.files):
            raise DataError(
                f"{name} files in {source_dir} cannot be read ({reason}); replace them with the original "
                "files, or delete them so that vitcli downloads them again"
            ) from None
        how = "download failed" if download else "downloading is off"
        raise DataError(
            f"{name} is not in {source_dir} (expected {', '.join(source.files)}) and {how} ({reason}); "
            "put the files there, or pass --data-dir (or set VITCLI_DATA_DIR) to where they are"
        ) from None


# --- image folders ---------------------------------------------------------------------------------


def _load_folder(path: Path, on_note: Callable[[str], None] | None = None) -> Source:
    if not path.is_dir():
        raise DataError(
            f"folder data set {path} does not exist; expected {path}/train/<class>/*.png and "
            f"{path}/test/<class>/*.png, or {path}/<class>/*.png"
        )
    # Without any split folder the class folders are at the top: a plain folder, split here.
    plain = not any((path / name).is_dir() for name in SPLITS)
    for required in () if plain else ("train", "test"):
        if not (path / required).is_dir():
            raise DataError(
                f"folder data set {path} has no {required}/ folder; "
                f"expected {path}/{required}/<class>/<image files>"
            )
    names = ["train", "test"] + (["val"] if (path / "val").is_dir() else [])
    progress = folders.progress_notes(on_note, PROGRESS_FROM)

    def decode() -> dict:
        if plain:
            tensors, classes = folders.decode_plain_folder(
                path, PLAIN_TEST_FRACTION, PLAIN_SPLIT_SEED, on_note, progress
            )
        else:
            tensors, classes = folders.decode_folder(path, names, on_note, progress)
        # No published constants for a user's folder: normalise with its own training pixels, computed
        # once here and cached with the images.
        tensors["train_mean"], tensors["train_std"] = map(
            torch.tensor, folders.channel_stats(tensors["train_images"])
        )
        return {"tensors": tensors, "classes": classes}

    # "folder2": decoded by vitcli.data.folders (channels from every image, links, 16-bit gray), so that a
    # folder cached by an older vitcli is decoded again; "plain": split here, a layout of its own.
    kind = "folder2-plain" if plain else "folder2"
    entry = cache.cached(f"{kind}-{path.resolve().name}", path, decode, on_note)
    t, classes = entry["tensors"], entry["classes"]
    train = Split(t["train_images"], t["train_labels"])
    if plain and on_note is not None:
        on_note(
            f"{path} has no train/ and test/: {PLAIN_TEST_FRACTION:.0%} of each class's images held out as "
            f"the test split ({len(t['test_labels']):,} of {len(train) + len(t['test_labels']):,}), "
            f"seed {PLAIN_SPLIT_SEED}"
        )
    _, channels, height, width = train.images.shape
    stats = ChannelStats(tuple(t["train_mean"].tolist()), tuple(t["train_std"].tolist()))
    family = "digits" if channels == 1 else "natural"
    info = DatasetInfo(f"folder:{path}", channels, height, width, classes, family)
    val = Split(t["val_images"], t["val_labels"]) if "val" in names else None
    return info, stats, train, val, Split(t["test_images"], t["test_labels"])
