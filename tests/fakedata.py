"""Small data sets written in the real on-disk formats, so that torchvision's real loaders read them.

Each class has its own bright square somewhere in the image, so a model can learn the data in a few
steps, and tests can check that training does something.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def class_images(
    n: int, classes: int, size: tuple[int, int], channels: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W, C) uint8 images and (n,) labels: noise plus a class-specific bright square."""
    rng = np.random.default_rng(seed)
    h, w = size
    labels = np.arange(n) % classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(n, h, w, channels), dtype=np.uint8)
    side = max(2, min(h, w) // 4)
    for i, label in enumerate(labels):
        row = (label * 3) % (h - side)
        col = (label * 5) % (w - side)
        images[i, row : row + side, col : col + side, :] = 255
    return images, labels.astype(np.int64)


def _write_idx(path: Path, array: np.ndarray) -> None:
    # IDX: two zero bytes, a type code (0x08 = unsigned byte), the number of dims, big-endian sizes.
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str = "MNIST", train: int = 600, test: int = 200) -> Path:
    """torchvision's MNIST layout: root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = class_images(n, 10, (28, 28), 1, seed)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images[..., 0])
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def write_cifar10(root: Path, per_batch: int = 100, test: int = 100) -> Path:
    """torchvision's CIFAR-10 layout: root/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    batches = [(f"data_batch_{i}", per_batch, i) for i in range(1, 6)] + [("test_batch", test, 9)]
    for name, n, seed in batches:
        images, labels = class_images(n, 10, (32, 32), 3, seed)
        # Rows of 3072 bytes: the red plane, then green, then blue.
        data = images.transpose(0, 3, 1, 2).reshape(n, -1)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels.tolist()}, f)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    return root


def write_cifar100(root: Path, train: int = 300, test: int = 100) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", train, 0), ("test", test, 1)):
        images, labels = class_images(n, 100, (32, 32), 3, seed)
        with open(folder / name, "wb") as f:
            pickle.dump(
                {"data": images.transpose(0, 3, 1, 2).reshape(n, -1), "fine_labels": labels.tolist()}, f
            )
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class{i:02d}" for i in range(100)]}, f)
    return root


def write_image_folder(
    root: Path,
    classes=("cat", "dog", "fish"),
    size=(16, 24),
    mode: str = "RGB",
    per_class: dict[str, int] | None = None,
    val: bool = False,
    plain: bool = False,
) -> Path:
    """root/{train,test[,val]}/<class>/<n>.png with images of `size` (height, width); with `plain`,
    root/<class>/<n>.png alone (per_class["train"] images a class, no split folders)."""
    counts = per_class or {"train": 20, "test": 6, "val": 6}
    channels = 1 if mode == "L" else 3
    for split in ("train",) if plain else ("train", "test") + (("val",) if val else ()):
        images, labels = class_images(
            counts[split] * len(classes),
            len(classes),
            size,
            channels,
            {"train": 0, "test": 1, "val": 2}[split],
        )
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / classes[label] if plain else root / split / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image[..., 0] if mode == "L" else image, mode).save(folder / f"{i:04d}.png")
    return root
