"""How uint8 images of a data set become the float input of one model; it travels with the model.

A model is trained on inputs prepared one way, and `eval`, `attention` and anything else that feeds it
must prepare them the same way, whatever data set the images come from. So the checkpoint stores this
record beside the weights, and the data set's description holds only facts about the data.

    normalise   (x / 255 - mean) / std per channel: the data set's statistics for models trained from
                scratch, the pretrained weights' for a fine-tuned timm ViT
    resize      bilinear, on the device, to the size the model was built for (timm ViTs at 224x224)
    channels    gray repeated to RGB for a model with an RGB input conv (finetune --channels repeat)

Everything runs on batches already on the device, after augmentation: resizing is linear, so it
commutes with the normalisation's multiply-add and the data pipeline stays at the data set's size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Preprocessing:
    mean: tuple[float, ...]  # per input channel, of pixel values scaled to [0, 1]
    std: tuple[float, ...]
    size: tuple[int, int] | None = None  # (height, width) the model takes; None: the images' own
    channels: int | None = None  # gray repeated to this many channels; None: the images' own

    def __post_init__(self) -> None:
        # A checkpoint's header is read into this: a zero or NaN std would make every input inf or NaN.
        if not self.mean or len(self.mean) != len(self.std):
            raise ValueError(f"mean {list(self.mean)} and std {list(self.std)} need one value per channel")
        finite = all(math.isfinite(m) for m in self.mean) and all(math.isfinite(s) for s in self.std)
        if not finite or min(self.std) <= 0:
            raise ValueError(f"mean must be finite and std positive, got {list(self.mean)}, {list(self.std)}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"size must be (height, width) of at least 1 pixel, got {self.size}")
        if self.channels is not None and self.channels < 1:
            raise ValueError(f"channels must be positive, got {self.channels}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Preprocessing:
        size = values.get("size")
        return cls(
            tuple(values["mean"]),
            tuple(values["std"]),
            None if size is None else tuple(size),
            values.get("channels"),
        )

    def on(self, device: torch.device | str) -> Preprocessor:
        return Preprocessor(self, device)


class Preprocessor:
    """`Preprocessing` bound to a device: call it on a uint8 (B, C, H, W) batch for the model's input."""

    def __init__(self, preprocessing: Preprocessing, device: torch.device | str):
        std = torch.tensor(preprocessing.std, device=device).view(1, -1, 1, 1)
        mean = torch.tensor(preprocessing.mean, device=device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std = x * scale + shift: one fused op per batch.
        self.scale, self.shift = 1 / (255 * std), -mean / std
        self.size = preprocessing.size
        self.channels = preprocessing.channels

    def __call__(self, images: Tensor) -> Tensor:
        x = torch.addcmul(self.shift, images.float(), self.scale)
        if self.size is not None and tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        if self.channels is not None and x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return x
