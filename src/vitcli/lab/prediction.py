"""The top classes a checkpoint gives image files, with each image prepared exactly as in training.

    report = predict("runs/vit-mnist-.../model.safetensors", ["seven.png"], top_k=3)
    report.images[0].top_k  # [("7", 0.97), ("1", 0.012), ("9", 0.004)]

An image goes through these steps, in this order:

1. decoded as the image-folder loader decodes training images (`vitcli.data.folders`): gray modes to
   one channel (16-bit gray to its high byte), everything else to RGB, alpha dropped;
2. with `invert`, every pixel value v becomes 255 - v;
3. converted to the model's channels: a colour image to gray with PIL's "L" (ITU-R 601-2 luma) for a
   gray model, a gray image repeated into R, G and B for a colour model;
4. fitted to the training images' size, when it differs, without distorting it: the largest centred
   crop of the training images' aspect ratio (a 640x480 photo for 28x28 digits: its centre 480x480),
   then resized with torchvision's bilinear resize with antialiasing. Squashing the whole picture
   would change the shapes the model learnt; classifiers are evaluated on centre crops for that reason;
5. the checkpoint's own preprocessing (normalisation, and the resize and channel repeat of a fine-tuned
   timm ViT), as `eval` and training apply it to uint8 images of the data set's size.

Probabilities are the softmax of the logits in float32 (no autocast), so they are the same on any device
to within rounding.

Brightness check: a model knows only images like its training images. An image whose mean pixel value
(0-1 scale, over all pixels and channels of the prepared uint8 image) is more than `BRIGHTNESS_LIMIT`
from the training images' mean gets a note: MNIST's mean is 0.13 (light digits on black), a dark digit
on white paper is about 0.85, and the means of MNIST's own 60,000 training images run from 0.03 to 0.40,
all within 0.27 of 0.13, so none of them gets the note and every one of them inverted does. The note
suggests --invert when the inverted image would be within the limit, and says when --invert made an
image further from the training images than it was. The training mean is the checkpoint's normalisation
mean, which is the training data's own; a fine-tuned timm ViT normalises with its pretrained weights'
statistics instead, so for it the published statistics of a torchvision data set are used, and the check
is off for an image folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from vitcli.data.datasets import TORCHVISION_SOURCES, DatasetInfo

# _Reader and _stack decode and stack exactly as training images are decoded; they are private to
# folders.py for now.
from vitcli.data.folders import _Reader, _stack
from vitcli.errors import ConfigError, DataError
from vitcli.runtime.devices import resolve_device
from vitcli.training.checkpoint import Checkpoint, load_checkpoint

BRIGHTNESS_LIMIT = 0.35  # on the 0-1 scale: a third of the range, beyond the spread of a data set's images


@dataclass(frozen=True)
class Brightness:
    """How the mean pixel value of a prepared image compares with the training images' mean."""

    mean: float  # of the prepared image (after --invert when given), 0-1
    training_mean: float
    inverted: bool  # whether --invert was given
    limit: float = BRIGHTNESS_LIMIT

    @property
    def far(self) -> bool:
        return abs(self.mean - self.training_mean) > self.limit

    @property
    def other_mean(self) -> float:
        """The mean the image would have with --invert the other way (inversion maps v to 1 - v)."""
        return 1 - self.mean

    @property
    def advice(self) -> str | None:
        """ "invert" when --invert would bring a far image within the limit, "no-invert" when --invert
        was given and the image was closer without it, else None."""
        if not self.far:
            return None
        other = abs(self.other_mean - self.training_mean)
        if not self.inverted and other <= self.limit:
            return "invert"
        if self.inverted and other < abs(self.mean - self.training_mean):
            return "no-invert"
        return None

    def note(self, name: str, info: DatasetInfo) -> str | None:
        """One line for an image far from the training images, None for one that is not."""
        if not self.far:
            return None
        how = "brighter" if self.mean > self.training_mean else "darker"
        images = f"the {info.name} training images"
        if self.advice == "no-invert":
            return (
                f"{name} with --invert is much {how} than {images} (mean {self.mean:.2f} against "
                f"{self.training_mean:.2f}; {self.other_mean:.2f} without --invert): leave out --invert"
            )
        said = f"{name} is much {how} than {images} (mean {self.mean:.2f} against {self.training_mean:.2f})"
        if self.advice == "invert":
            digit = info.family == "digits" and how == "brighter"
            return f"{said}: {'a dark digit on light paper' if digit else 'inverted colours'}? try --invert"
        return f"{said}: the model has not seen images like it, so its answer means little"

    def to_dict(self) -> dict:
        return {
            "mean": self.mean,
            "training_mean": self.training_mean,
            "limit": self.limit,
            "far": self.far,
            "advice": self.advice,
        }


@dataclass
class Prepared:
    """An image file as the model's uint8 input, and what was done to it to get there."""

    path: Path
    image: Tensor  # uint8 (C, H, W) of the training images' channels and size
    steps: list[str]  # "resized 640x480 -> 28x28", ...


@dataclass
class Prediction:
    path: Path
    probabilities: Tensor  # float32 (classes,), on the CPU
    top_k: list[tuple[str, float]]  # (class, probability), most probable first
    steps: list[str]  # what was done to fit the image to the model
    brightness: Brightness | None  # None: the checkpoint has no training statistics to compare with
    note: str | None  # the brightness check's line, when the image is far from the training images


@dataclass
class PredictReport:
    checkpoint: Path
    dataset: str
    classes: list[str]
    images: list[Prediction]
    notes: list[str] = field(default_factory=list)  # about the whole run: --top-k capped, check off

    def to_dict(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint),
            "dataset": self.dataset,
            "images": [
                {
                    "path": str(p.path),
                    "top_k": [{"class": c, "probability": prob} for c, prob in p.top_k],
                    "note": p.note,
                    "brightness": None if p.brightness is None else p.brightness.to_dict(),
                    "prepared": p.steps,
                }
                for p in self.images
            ],
        }


def predict(
    checkpoint: str | Path,
    images: list[str | Path],
    top_k: int = 5,
    invert: bool = False,
    device: str = "auto",
    batch_size: int = 256,
) -> PredictReport:
    """The `top_k` classes (at most all of them) of each image file, by the model in `checkpoint` (a
    model.safetensors or its run directory); `invert` inverts each image first (255 - v)."""
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1, got {top_k}; give how many classes to show")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be a positive whole number, got {batch_size}")
    if not images:
        raise ConfigError("no image files given; pass one or more after the checkpoint")
    torch_device = resolve_device(device)
    loaded = load_checkpoint(checkpoint, torch_device)
    info, classes = loaded.info, list(loaded.info.classes)
    if info.channels not in (1, 3):
        raise ConfigError(f"predict needs a model of 1- or 3-channel images; this one has {info.channels}")
    prepared = [prepare(Path(p), info, invert) for p in images]
    probabilities = classify(loaded, torch.stack([p.image for p in prepared]), torch_device, batch_size)
    notes = []
    k = min(top_k, len(classes))
    if top_k > k:
        notes.append(f"--top-k {top_k} is more than the model's {k} classes: showing all {k}")
    reference = training_mean(loaded)
    if reference is None:
        notes.append(
            f"no brightness check: {checkpoint} normalises with its pretrained weights' statistics and "
            f"the mean of its training images ({info.name}) is not recorded"
        )
    results = []
    for p, probs in zip(prepared, probabilities):
        top = probs.topk(k)
        check = (
            None if reference is None else Brightness(p.image.float().mean().item() / 255, reference, invert)
        )
        results.append(
            Prediction(
                p.path,
                probs,
                [(classes[i], v) for v, i in zip(top.values.tolist(), top.indices.tolist())],
                p.steps,
                check,
                None if check is None else check.note(str(p.path), info),
            )
        )
    return PredictReport(Path(checkpoint), info.name, classes, results, notes)


@torch.inference_mode()
def classify(checkpoint: Checkpoint, images: Tensor, device: torch.device, batch_size: int) -> Tensor:
    """Class probabilities (N, classes) on the CPU of uint8 images (N, C, H, W) shaped like the training
    images, through the checkpoint's preprocessing and model in float32."""
    preprocess = checkpoint.preprocessing.on(device)
    checkpoint.model.eval()
    out = [
        torch.softmax(
            checkpoint.model(preprocess(images[i : i + batch_size].to(device))).float(), dim=1
        ).cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def training_mean(checkpoint: Checkpoint) -> float | None:
    """The mean pixel value (0-1, averaged over channels) of the images the checkpoint was trained on;
    None when the checkpoint does not record it."""
    adaptation = checkpoint.adaptation
    if adaptation is None or adaptation.normalisation == "data":
        mean = checkpoint.preprocessing.mean  # the training data's own statistics
    elif checkpoint.info.name in TORCHVISION_SOURCES:
        mean = TORCHVISION_SOURCES[checkpoint.info.name].mean
    else:
        return None
    return sum(mean) / len(mean)


def prepare(path: Path, info: DatasetInfo, invert: bool = False) -> Prepared:
    """The image file as uint8 (C, H, W) of the training images' channels and size (see the module's
    docstring for the steps)."""
    if not path.exists():
        raise DataError(f"image file {path} does not exist; check the path")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not an image file; pass image files (PNG, JPEG, ...)")
    reader = _Reader()
    array = reader.read(str(path))  # a DataError of one line for a file PIL cannot read
    steps = list(reader.steps)  # turned upright, the first frame of an animation
    if invert:
        array = 255 - array
    if info.channels == 1 and array.ndim == 3:
        array = np.asarray(Image.fromarray(array, "RGB").convert("L"))
        steps.append("colour converted to gray")
    elif info.channels == 3 and array.ndim == 2:
        steps.append("gray repeated into RGB")
    image, fitted = fit_size(_stack([array], info.channels)[0], (info.height, info.width))
    return Prepared(path, image, steps + fitted)


def fit_size(image: Tensor, size: tuple[int, int]) -> tuple[Tensor, list[str]]:
    """uint8 (C, H, W) at `size` (height, width): the largest centred crop of that aspect ratio, resized
    with antialiasing; and what was done, with sizes as width x height."""
    height, width = image.shape[-2:]
    if (height, width) == size:
        return image, []
    target_h, target_w = size
    steps = []
    if height * target_w != width * target_h:
        if width * target_h > height * target_w:  # wider than the training images: crop the sides
            crop = (height, max(1, round(height * target_w / target_h)))
        else:
            crop = (max(1, round(width * target_h / target_w)), width)
        image = TF.center_crop(image, list(crop))
        steps.append(f"centre-cropped {width}x{height} -> {crop[1]}x{crop[0]}")
        height, width = crop
    if (height, width) != size:
        image = TF.resize(image, list(size), interpolation=InterpolationMode.BILINEAR, antialias=True)
        steps.append(f"resized {width}x{height} -> {target_w}x{target_h}")
    return image, steps
