"""The baseline CNN: the classic small VGG-style network used in ViT-versus-CNN comparisons.

Three stages of two 3x3 convolutions (32/64, 128/128, 256/256 channels) each followed by 2x2 max-pooling
and batch norm, then fully connected layers of 1024 and 512 units. On 32x32x3 images with 10 classes it
has 5,852,234 parameters. The first convolution takes any channel count and the first fully connected
layer is sized from the image, so MNIST (28x28x1) and CIFAR (32x32x3) both fit.
"""

from __future__ import annotations

from torch import Tensor, nn


def _stage(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(mid_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(out_channels),
    )


class CNN(nn.Module):
    def __init__(
        self, *, image_size: tuple[int, int], in_channels: int, num_classes: int, dropout: float = 0.0
    ):
        super().__init__()
        height, width = image_size
        if min(height, width) < 8:
            raise ValueError(f"image {height}x{width} is too small for three 2x2 poolings (at least 8x8)")
        self.features = nn.Sequential(
            _stage(in_channels, 32, 64), _stage(64, 128, 128), _stage(128, 256, 256)
        )
        # Each pooling floors the size: 32 -> 16 -> 8 -> 4, and 28 -> 14 -> 7 -> 3.
        flat = 256 * (height // 8) * (width // 8)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(flat, 1024),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(1024, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))
