"""RandAugment and random erasing as batched tensor operations, with a new draw for every image.

Both run on the device, on whole batches, with no PIL and no per-image Python, like the shifts and flips
in `vitcli.data.batches`. Every random number comes from the generator passed in, so a run is repeatable
and a resumed run can replay its draws.

RandAugment (Cubuk et al. 2020) is sampled as TrivialAugment does it: each image draws its own op and its
own strength, uniform in [0, magnitude], for each of its `ops_per_image` rounds. Random erasing (Zhong et
al. 2020) is timm's RandomErasing with mode="pixel": one rectangle of standard-normal noise per erased
image, on normalised images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.v2 import functional as TF

MAX_MAGNITUDE = 30  # torchvision's scale: 30 is each op's strongest

# Geometric ops come first, after identity, in both families; `_round` relies on their codes being 1-5.
GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
COLOUR_OPS = ("brightness", "contrast", "sharpness", "solarize", "posterize", "autocontrast", "equalize")
# Digits get no colour ops and no flips: a recoloured or mirrored digit is not the same digit.
DIGIT_OPS = ("identity", *GEOMETRIC_OPS)
NATURAL_OPS = (*DIGIT_OPS, *COLOUR_OPS)
FAMILY_OPS = {"digits": DIGIT_OPS, "natural": NATURAL_OPS}

# Each op's strength at magnitude 30 (torchvision's RandAugment, translation scaled to the image side).
MAX_DEGREES = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE = 0.15  # of the side: 4 px at 28
MAX_FACTOR = 0.9  # brightness, contrast and sharpness factors span 1 +- 0.9
MIN_POSTERIZE_BITS = 4

# timm's RandomErasing defaults.
ERASE_AREA = (0.02, 1 / 3)  # of the image
ERASE_LOG_ASPECT = (math.log(0.3), math.log(1 / 0.3))


def rand_augment(
    images: Tensor, magnitude: float, family: str, generator: torch.Generator, ops_per_image: int = 2
) -> Tensor:
    """RandAugment on uint8 images (B, C, H, W): `ops_per_image` rounds, each image drawing one op of the
    family ("digits" or "natural") and a strength uniform in [0, magnitude] (0-30) in every round."""
    if family not in FAMILY_OPS:
        raise ValueError(f"unknown augmentation family {family!r}; use one of {', '.join(FAMILY_OPS)}")
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(
            f"rand_augment takes uint8 images (B, C, H, W), got {images.dtype} {tuple(images.shape)}"
        )
    if magnitude <= 0 or images.shape[0] == 0:
        return images
    strength = min(magnitude, MAX_MAGNITUDE) / MAX_MAGNITUDE
    for _ in range(ops_per_image):
        images = _round(images, FAMILY_OPS[family], strength, generator)
    return images


def _round(images: Tensor, ops: tuple[str, ...], strength: float, generator: torch.Generator) -> Tensor:
    """One op per image: every image draws its op, its strength and the strength's sign."""
    B, device = images.shape[0], images.device
    op = torch.randint(len(ops), (B,), generator=generator, device=device)
    level = torch.rand(B, generator=generator, device=device) * strength
    sign = torch.randint(2, (B,), generator=generator, device=device) * 2 - 1
    signed = level * sign
    # Sorted by op, each op's images are one slice, so each op works on its own images only, and the whole
    # round costs two gathers, a cat and a single host sync (the counts), where a test of every op's mask
    # would cost one sync each and computing every op on every image would cost 13 times over.
    # (index_select: indexing with x[order] or index_copy_ is 20-30 times slower on a CPU.)
    order = torch.argsort(op, stable=True)
    counts = torch.bincount(op, minlength=len(ops)).tolist()
    images_sorted, op, signed = (t.index_select(0, order) for t in (images, op, signed))
    moving = slice(counts[0], sum(counts[: 1 + len(GEOMETRIC_OPS)]))  # codes 1-5 follow identity's 0
    pieces = [images_sorted[: counts[0]]]
    if moving.stop > moving.start:
        pieces.append(_geometric(images_sorted[moving], op[moving], signed[moving]))
    start = moving.stop
    for name, count in zip(ops[1 + len(GEOMETRIC_OPS) :], counts[1 + len(GEOMETRIC_OPS) :]):
        if count:  # an op no image drew costs nothing
            pieces.append(COLOUR[name](images_sorted[start : start + count], signed[start : start + count]))
            start += count
    unsort = torch.empty_like(order).scatter_(0, order, torch.arange(B, device=device))
    return torch.cat(pieces).index_select(0, unsort)


def _geometric(images: Tensor, op: Tensor, signed: Tensor) -> Tensor:
    """Rotate, shear or translate each image by its own signed strength (op codes 1-5), about its centre,
    in one grid_sample (bilinear, filling with zeros) with each image's own affine grid."""
    n, C, H, W = images.shape
    rotate, shear_x, shear_y, translate_x, translate_y = (
        torch.where(op == code, signed, 0.0) for code in range(1, 1 + len(GEOMETRIC_OPS))
    )
    angle = rotate * math.radians(MAX_DEGREES)
    cos, sin = angle.cos(), angle.sin()
    # grid_sample wants, for each output pixel, the input point it samples, in coordinates that run from -1
    # to 1 along each axis (pixel centres, as affine_grid with align_corners=False): the H/W factors keep a
    # rotation a rotation on a non-square image, and a shift of a fraction t of the side is 2t. Only one of
    # the five is non-zero for any image. The grid is built as (n, 2, 1, W) + (n, 2, H, 1), one full-size
    # add along rows (an add with the (x, y) pair as the innermost dim is several times slower on a CPU,
    # and so is affine_grid's batched matrix product), and handed over as a (n, H, W, 2) view.
    per_x = torch.stack([cos, (sin + MAX_SHEAR * shear_y) * (W / H)], 1)[:, :, None, None]
    per_y = torch.stack([(MAX_SHEAR * shear_x - sin) * (H / W), cos], 1)[:, :, None, None]
    shift = 2 * MAX_TRANSLATE * torch.stack([translate_x, translate_y], 1)[:, :, None, None]
    x = torch.linspace(-1 + 1 / W, 1 - 1 / W, W, device=images.device)
    y = torch.linspace(-1 + 1 / H, 1 - 1 / H, H, device=images.device)[:, None]
    grid = ((per_x * x + shift) + per_y * y).permute(0, 2, 3, 1)  # (n, H, W, 2)
    moved = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return moved.round_().clamp_(0, 255).to(torch.uint8)


def _blend(images: Tensor, other: Tensor | float, factor: Tensor) -> Tensor:
    """factor * images + (1 - factor) * other, per image, back to uint8: torchvision's blend."""
    f = factor[:, None, None, None]
    return (images * f + other * (1 - f)).round_().clamp_(0, 255).to(torch.uint8)


def _brightness(images: Tensor, signed: Tensor) -> Tensor:
    return _blend(images.float(), 0.0, 1 + MAX_FACTOR * signed)


def _contrast(images: Tensor, signed: Tensor) -> Tensor:
    """Blend with each image's own mean grey (torchvision's luma weights, floored as it does for uint8)."""
    x = images.float()
    if x.shape[1] == 3:
        grey = (x * x.new_tensor([0.2989, 0.587, 0.114])[:, None, None]).sum(1, keepdim=True).floor_()
    else:
        grey = x
    return _blend(x, grey.mean((1, 2, 3), keepdim=True), 1 + MAX_FACTOR * signed)


def _sharpness(images: Tensor, signed: Tensor) -> Tensor:
    """Blend with the 3x3 smoothed image, whose border pixels stay as they are (torchvision's sharpness)."""
    x = images.float()
    # The kernel is [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13: a 3x3 box sum, done as two sums of three
    # shifted slices (a depthwise conv2d is several times slower on a CPU), plus 4 times the centre.
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    box = rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]
    smooth = x.clone()
    smooth[..., 1:-1, 1:-1] = ((box + 4 * x[..., 1:-1, 1:-1]) / 13).round_()
    return _blend(x, smooth, 1 + MAX_FACTOR * signed)


def _solarize(images: Tensor, signed: Tensor) -> Tensor:
    """Invert the pixels at or above a threshold that falls from 255 to 0 as the strength rises."""
    threshold = 255 * (1 - signed.abs())
    return torch.where(images >= threshold[:, None, None, None], 255 - images, images)


def _posterize(images: Tensor, signed: Tensor) -> Tensor:
    """Keep the top 8 down to 4 bits of each pixel."""
    bits = 8 - ((8 - MIN_POSTERIZE_BITS) * signed.abs()).round().long()
    keep = (256 - (1 << (8 - bits))).to(torch.uint8)
    return images & keep[:, None, None, None]


# torchvision's autocontrast and equalize already work image by image (and channel by channel) on a batch.
COLOUR = {
    "brightness": _brightness,
    "contrast": _contrast,
    "sharpness": _sharpness,
    "solarize": _solarize,
    "posterize": _posterize,
    "autocontrast": lambda images, signed: TF.autocontrast(images),
    "equalize": lambda images, signed: TF.equalize(images),
}


def erase_boxes(
    batch: int, height: int, width: int, probability: float, generator: torch.Generator
) -> Tensor:
    """The rectangles `random_erase` fills: (B, 4) int64 (top, left, h, w) on the generator's device, with
    h = w = 0 (and top = left = 0) for the images it leaves alone.

    Each image is erased with `probability`; a box covers a fraction of the image uniform in [0.02, 1/3],
    with an aspect ratio log-uniform in [0.3, 1/0.3], clamped to the image, at a uniform position inside
    it. Five uniform draws per image, always, so the generator moves the same whatever the outcome."""
    u = torch.rand(5, batch, generator=generator, device=generator.device)
    erased = u[0] < probability
    area = (ERASE_AREA[0] + (ERASE_AREA[1] - ERASE_AREA[0]) * u[1]) * (height * width)
    aspect = torch.exp(ERASE_LOG_ASPECT[0] + (ERASE_LOG_ASPECT[1] - ERASE_LOG_ASPECT[0]) * u[2])
    h = (area * aspect).sqrt().round().clamp(1, height).long()
    w = (area / aspect).sqrt().round().clamp(1, width).long()
    # A float32 draw just under 1 can round up to the bound, hence the minimum.
    top = torch.minimum((u[3] * (height - h + 1)).long(), height - h)
    left = torch.minimum((u[4] * (width - w + 1)).long(), width - w)
    return torch.stack([top, left, h, w], 1) * erased[:, None]


def random_erase(images: Tensor, probability: float, generator: torch.Generator) -> Tensor:
    """Random erasing on normalised float images (B, C, H, W): each image with `probability` gets one
    rectangle (`erase_boxes`) of per-pixel standard-normal noise, in the images' dtype."""
    if probability <= 0 or images.shape[0] == 0:
        return images
    B, C, H, W = images.shape
    top, left, h, w = erase_boxes(B, H, W, probability, generator).unbind(1)
    rows = torch.arange(H, device=images.device)
    cols = torch.arange(W, device=images.device)
    inside_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (B, H)
    inside_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (B, W)
    mask = inside_rows[:, None, :, None] & inside_cols[:, None, None, :]  # (B, 1, H, W)
    # Noise for the erased pixels only: a quarter of the batch erased needs a tenth of a batch of draws,
    # and drawing them dominates the cost on a CPU. This costs one host sync (the count).
    count = int((h * w).sum()) * C
    noise = torch.randn(count, generator=generator, device=images.device, dtype=images.dtype)
    return images.masked_scatter(mask, noise)
