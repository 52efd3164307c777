"""Image folders, `PATH/{train,test[,val]}/<class>/<images>` or plain `PATH/<class>/<images>`, decoded
into uint8 tensors (how a plain folder is split is `vitcli.data.datasets`').

Read as torchvision's ImageFolder reads them (the same classes, files and order), with these rules;
anything else is a DataError of one line that names the file or folder and says what to do:

- Classes are the folders in each split folder, sorted by name (a link to a folder elsewhere is fine).
  Every split needs the same class folders, and every class folder at least one image.
- Images are the files whose names end in an extension ImageFolder knows (.jpg, .png, ...), in the class
  folder and the folders below it; other files are left out, as ImageFolder leaves them out. Names that
  start with "." (macOS's `._*` and `.DS_Store`, `.ipynb_checkpoints/`) are hidden and left out too.
- Links to files are followed; a link to nothing is refused, as is a FIFO or device named like an image.
- Links to folders below a class folder are followed only when they lead out of the data set (the data
  set folder and its class folders, wherever they really are) and to a folder not already read for that
  class. A link back into the data set (`ln -s . again`, a link to another class) would count its images
  twice, or under another class, and a loop of links would never end: such links are skipped, and
  `on_note` gets one line naming them. A class folder that is a link to a folder holding other folders of
  the data set, or to the folder of another class of its split, is refused.
- A file PIL cannot read (not an image, truncated) is refused. So is an image of more pixels than PIL's
  decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`, 89.5 million): its size is read from its
  header and it is never decoded. Every image must have the size of the first, checked before decoding.
- Channels come from every image of every split: 1 (gray) only when all images are gray (modes 1, L, LA,
  I, I;16, F), else RGB, with gray images repeated into the three channels. 16-bit gray is scaled to 8
  bits (PIL would clip it to 255); alpha is dropped.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.datasets.folder import IMG_EXTENSIONS

from vitcli.data.stratified import hold_out
from vitcli.errors import DataError

GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_EXTENSIONS = ", ".join(IMG_EXTENSIONS)

ORIENTATION = 0x0112  # the EXIF tag that says how a camera's picture is to be turned


def decode_folder(
    path: Path,
    splits: list[str],
    on_note: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """({"<split>_images": uint8 (N, C, H, W), "<split>_labels": int64 (N,)}, classes) for `splits` of
    the image folder `path`: every folder listed and checked first, then every image decoded, with
    `on_progress(done, total)` after each image."""
    return _decode(path, {split: path / split for split in splits}, on_note, on_progress)


def decode_plain_folder(
    path: Path,
    test_fraction: float,
    seed: int,
    on_note: Callable[[str], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """decode_folder's tensors for "train" and "test" of a plain image folder, `PATH/<class>/<images>`
    with no split folders, read by the same rules: `test_fraction` of each class's images (rounded half
    up) held out as the test split, drawn with `seed` (a fixed one, not --seed: every run, and the
    cache, sees the same split)."""
    tensors, classes = _decode(path, {"all": path}, on_note, on_progress)
    images, labels = tensors["all_images"], tensors["all_labels"]
    kept, held = hold_out(labels, test_fraction, seed)
    if not len(held):
        raise DataError(
            f"folder data set {path} has too few images to hold out {test_fraction:.0%} of each class as "
            f"a test split ({len(labels)} images in {len(classes)} classes); add images (3 or more a "
            f"class), or put them in {path}/train/<class>/ and {path}/test/<class>/"
        )
    split = {"train_images": images[kept], "train_labels": labels[kept]}
    return {**split, "test_images": images[held], "test_labels": labels[held]}, classes


def progress_notes(
    on_note: Callable[[str], None] | None, larger_than: int
) -> Callable[[int, int], None] | None:
    """An `on_progress` for decoding that gives `on_note` a line every tenth of the way ("decoding
    12,000 of 60,000 images"), for folders of more than `larger_than` images: smaller ones decode in a
    few seconds."""
    if on_note is None:
        return None

    def progress(done: int, total: int) -> None:
        step = -(-total // 10)  # a tenth, rounded up
        if total > larger_than and (done % step == 0 or done == total):
            on_note(f"decoding {done:,} of {total:,} images")

    return progress


def _decode(
    path: Path,
    dirs: dict[str, Path],
    on_note: Callable[[str], None] | None,
    on_progress: Callable[[int, int], None] | None,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """decode_folder for the splits `dirs` (split name -> the folder of its class folders) of `path`."""
    splits = list(dirs)
    classes = _classes(dirs[splits[0]], splits[0])
    for split in splits[1:]:
        if (split_classes := _classes(dirs[split], split)) != classes:
            raise _different_classes(dirs[split], split_classes, dirs[splits[0]], classes)
    # The data set's folders, where they really are: linked folders leading into them are not followed.
    tree = {os.path.realpath(path)}.union(*(_class_folders(dirs[split], classes) for split in splits))
    skipped: list[str] = []
    listed = {
        split: [
            (file, label)
            for label, name in enumerate(classes)
            for file in _images(dirs[split] / name, tree, skipped)
        ]
        for split in splits
    }
    if skipped and on_note is not None:
        more = "; ..." if len(skipped) > 3 else ""
        on_note(
            f"left out {len(skipped)} linked folder(s) in class folders that lead back into the data set "
            f"{path} or to a folder already read: {'; '.join(skipped[:3])}{more}"
        )
    reader, total = _Reader(), sum(map(len, listed.values()))
    arrays: dict[str, list[np.ndarray]] = {split: [] for split in splits}
    for split in splits:
        for file, _ in listed[split]:
            arrays[split].append(reader.read(file))
            if on_progress is not None:
                on_progress(reader.count, total)
    tensors = {}
    for split in splits:
        tensors[f"{split}_images"] = _stack(arrays.pop(split), 1 if reader.all_gray else 3)
        tensors[f"{split}_labels"] = torch.tensor([label for _, label in listed[split]], dtype=torch.int64)
    return tensors, classes


def _classes(split_dir: Path, split: str) -> list[str]:
    try:
        entries = list(os.scandir(split_dir))
    except OSError as e:
        raise DataError(f"cannot list {split_dir} ({e.strerror or e}); make it readable") from None
    classes = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    if not classes:
        remove = f", or remove the empty {split}/ folder" if split == "val" else ""
        raise DataError(
            f"{split_dir} has no class folders; put each class's images in {split_dir}/<class>/{remove}"
        )
    return classes


def _class_folders(split_dir: Path, classes: list[str]) -> set[str]:
    """The real paths of a split's class folders, each a different folder."""
    seen: dict[str, str] = {}
    for name in classes:
        real = os.path.realpath(split_dir / name)
        if real in seen:
            raise DataError(
                f"{split_dir / name} and {split_dir / seen[real]} are the same folder ({real}); "
                "every class needs a folder of its own images"
            )
        seen[real] = name
    return set(seen)


def _different_classes(split_dir: Path, classes: list[str], first_dir: Path, expected: list[str]):
    missing = ", ".join(c for c in expected if c not in classes)
    extra = ", ".join(c for c in classes if c not in expected)
    name = f"{split_dir.name}/"
    what = "; ".join(
        p for p in (missing and f"{name} lacks {missing}", extra and f"{name} also has {extra}") if p
    )
    return DataError(
        f"the class folders of {split_dir} are not those of {first_dir} ({what}); every split needs the "
        "same class folders: add, rename or remove folders so that they match"
    )


def _images(class_dir: Path, tree: set[str], skipped: list[str]) -> list[str]:
    """The image files under `class_dir`, in ImageFolder's order (by folder, then name)."""
    start = os.path.realpath(class_dir)
    if inside := sorted(t for t in tree if t != start and _within(t, start)):
        raise DataError(
            f"{class_dir} is a link to {start}, which holds other folders of the data set ({inside[0]}); "
            "link it to a folder of this class's images only"
        )
    found, others, visited, pending = [], [], {start}, [str(class_dir)]
    while pending:
        folder = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            raise DataError(f"cannot list {folder} ({e.strerror or e}); make it readable") from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                real = os.path.realpath(entry.path)
                if real in visited or (entry.is_symlink() and _overlaps(real, tree)):
                    skipped.append(f"{entry.path} -> {real}")
                    continue
                visited.add(real)
                pending.append(entry.path)
            elif entry.name.lower().endswith(IMG_EXTENSIONS):
                if not entry.is_file():
                    raise _not_a_file(entry.path)
                found.append(entry.path)
            else:
                others.append(entry.name)
    if not found:
        what = f" (its {len(others)} file(s), such as {min(others)}, are not {_EXTENSIONS})" if others else ""
        raise DataError(
            f"class folder {class_dir} has no images{what}; put images in it ({_EXTENSIONS}), "
            "or remove this class's folder from every split"
        )
    return sorted(found, key=os.path.split)


def _overlaps(path: str, tree: set[str]) -> bool:
    """Whether `path` is in one of the data set's folders, or holds one."""
    return any(_within(path, t) or _within(t, path) for t in tree)


def _within(path: str, folder: str) -> bool:
    """Whether `path` is `folder` or inside it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _not_a_file(path: str) -> DataError:
    if os.path.islink(path) and not os.path.exists(path):
        return DataError(
            f"{path} is a broken link (to {os.readlink(path)}, which does not exist); "
            "remove it or point it at an image"
        )
    return DataError(f"{path} is not a regular file; remove it from the data set folder")


class _Reader:
    """Reads images one at a time, each checked before it is decoded, and notes whether all are gray."""

    def __init__(self) -> None:
        self.first: tuple[str, tuple[int, int]] | None = None  # the first file and its (width, height)
        self.all_gray = True
        self.count = 0  # images read so far

    def read(self, file: str) -> np.ndarray:
        """(H, W) for a gray image, (H, W, 3) for a colour one, upright as its EXIF orientation says (a
        phone's photo is stored sideways with a tag to turn it). `steps` says what was done to it."""
        self.count += 1
        self.steps: list[str] = []
        with _open(file) as opened:
            self._check_pixels(file, opened.size)  # before anything is decoded
            frames = getattr(opened, "n_frames", 1)
            if frames > 1:
                self.steps.append(f"the first of its {frames} frames")
            image, orientation = _upright(file, opened)
            if orientation != 1:
                self.steps.append(f"turned upright (EXIF orientation {orientation})")
            self._check_size(file, image.size)
            mode = image.mode
            gray = mode in GRAY_MODES
            self.all_gray &= gray
            try:
                if mode.startswith("I;16"):  # 16-bit gray: the high byte (convert("L") would clip)
                    return (np.asarray(image) >> 8).astype(np.uint8)
                return np.asarray(image.convert("L" if gray else "RGB"))
            except Exception as e:  # noqa: BLE001 - PIL's decoders raise OSError, ValueError, SyntaxError...
                raise _unreadable(file, e) from None

    def _check_pixels(self, file: str, size: tuple[int, int]) -> None:
        width, height = size
        limit = Image.MAX_IMAGE_PIXELS
        if limit and width * height > limit:
            raise _too_large(file, f"{width}x{height}, {width * height:,} pixels")

    def _check_size(self, file: str, size: tuple[int, int]) -> None:
        width, height = size
        if self.first is None:
            self.first = (file, size)
        elif size != self.first[1]:
            first, (w, h) = self.first
            raise DataError(
                f"{file} is {width}x{height} pixels but {first} is {w}x{h}; vitcli needs all the images "
                "(of every split) in one size: resize them to one size first"
            )


def _upright(file: str, image: Image.Image) -> tuple[Image.Image, int]:
    """The image turned as its EXIF orientation tag says, and the tag (1: as stored)."""
    try:
        orientation = image.getexif().get(ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - a damaged file: decoding it says what is wrong, in one line
        return image, 1
    if orientation == 1:
        return image, 1
    try:
        return ImageOps.exif_transpose(image), orientation
    except Exception as e:  # noqa: BLE001 - PIL's decoders raise OSError, ValueError, SyntaxError...
        raise _unreadable(file, e) from None


def _open(file: str) -> Image.Image:
    """The image, opened (its header read) but not decoded."""
    try:
        with warnings.catch_warnings():  # over the limit: refused below, with the file's name
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(file)
    except Image.DecompressionBombError as e:  # twice the limit: PIL refuses it
        pixels = re.search(r"\((\d+) pixels\)", str(e))
        raise _too_large(file, f"{int(pixels[1]):,} pixels" if pixels else "too many pixels") from None
    except Exception as e:  # noqa: BLE001 - any file may be there: OSError, SyntaxError, ValueError...
        raise _unreadable(file, e) from None


def _too_large(file: str, size: str) -> DataError:
    return DataError(
        f"{file} is too large to decode ({size}; PIL's limit against decompression bombs is "
        f"{Image.MAX_IMAGE_PIXELS:,} pixels); vitcli trains on small images: resize it, or remove it"
    )


def _unreadable(file: str, error: Exception) -> DataError:
    if isinstance(error, Image.UnidentifiedImageError):
        reason = "not an image file that PIL can read"
    elif isinstance(error, OSError) and error.strerror:
        reason = error.strerror
    else:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return DataError(f"cannot read image {file} ({reason}); replace it with a good copy, or remove it")


def _stack(arrays: list[np.ndarray], channels: int) -> torch.Tensor:
    """(N, channels, H, W) uint8 from (H, W) and (H, W, 3) arrays: a gray image fills every channel."""
    height, width = arrays[0].shape[:2]
    out = np.empty((len(arrays), channels, height, width), dtype=np.uint8)
    for i, array in enumerate(arrays):
        out[i] = array.transpose(2, 0, 1) if array.ndim == 3 else array
    return torch.from_numpy(out)


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images scaled to [0, 1], a chunk at a time: a float copy of a
    CIFAR-sized set at once would take 600 MB."""
    total = torch.zeros(images.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for part in images.split(chunk):
        x = part.to(torch.float64).div_(255)
        total += x.sum(dim=(0, 2, 3))
        squares += x.square().sum(dim=(0, 2, 3))
    n = images.numel() // images.shape[1]
    mean = total / n
    std = (squares / n - mean.square()).clamp_min(0).sqrt().clamp_min(1e-3)
    return mean.tolist(), std.tolist()
