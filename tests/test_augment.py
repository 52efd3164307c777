"""RandAugment and random erasing (vitcli.data.augment): batched, per-image, and driven by the generator
passed in only."""

import inspect
import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch import Tensor

from vitcli.data.augment import (
    COLOUR,
    COLOUR_OPS,
    DIGIT_OPS,
    NATURAL_OPS,
    erase_boxes,
    rand_augment,
    random_erase,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uint8_images(shape, seed: int = 0) -> Tensor:
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen(seed))


def changed_images(a: Tensor, b: Tensor) -> Tensor:
    """(B,) bool: which images differ anywhere."""
    return (a != b).flatten(1).any(1)


# --- RandAugment --------------------------------------------------------------------------------------


@pytest.mark.parametrize("family, shape", [("digits", (64, 1, 28, 28)), ("natural", (64, 3, 32, 32))])
def test_rand_augment_keeps_shape_dtype_and_device_and_changes_most_images(family, shape):
    images = uint8_images(shape)
    before = images.clone()
    out = rand_augment(images, 15, family, gen())
    assert isinstance(out, Tensor)  # images only: the caller keeps the labels
    assert out.shape == images.shape and out.dtype == torch.uint8 and out.device == images.device
    assert torch.equal(images, before)  # the input is not modified in place
    # Only an image that drew identity (or a no-op strength) twice is left as it was: 1/36 for digits.
    assert changed_images(out, images).sum() >= 56


def test_rand_augment_returns_only_images():
    signature = inspect.signature(rand_augment)
    assert list(signature.parameters)[:4] == ["images", "magnitude", "family", "generator"]
    assert signature.return_annotation in (Tensor, "Tensor")
    assert isinstance(rand_augment(uint8_images((4, 1, 28, 28)), 9, "digits", gen()), Tensor)


@pytest.mark.parametrize("family", ["digits", "natural"])
def test_magnitude_zero_is_the_identity(family):
    images = uint8_images((8, 3, 32, 32))
    assert torch.equal(rand_augment(images, 0, family, gen()), images)


def test_every_image_draws_its_own_op_and_strength():
    one = uint8_images((1, 1, 28, 28)).expand(32, -1, -1, -1)
    for family in ("digits", "natural"):
        out = rand_augment(one, 15, family, gen())
        distinct = torch.unique(out.flatten(1), dim=0).shape[0]
        assert distinct >= 24, f"{family}: only {distinct} different outputs of 32"


def test_digits_get_no_colour_ops_and_no_flips():
    assert DIGIT_OPS == ("identity", "rotate", "shear_x", "shear_y", "translate_x", "translate_y")
    assert not set(DIGIT_OPS) & set(COLOUR_OPS)
    assert set(NATURAL_OPS) == set(DIGIT_OPS) | set(COLOUR_OPS)
    assert not [name for name in NATURAL_OPS if "flip" in name]


def test_digits_keep_pixel_values_where_natural_images_change_them():
    """A constant grey image: moving it keeps 128 wherever the samples stay inside the image (the centre
    always does), so only a colour op can change the centre."""
    grey = torch.full((64, 3, 32, 32), 128, dtype=torch.uint8)
    digits = rand_augment(grey[:, :1], 30, "digits", gen())
    assert (digits[:, :, 12:20, 12:20] == 128).all()
    natural = rand_augment(grey, 30, "natural", gen())
    # Brightness and solarize change a constant image: about 2 rounds x 2/13 of the images.
    assert changed_images(natural[:, :, 14:18, 14:18], grey[:, :, 14:18, 14:18]).sum() >= 5


def test_geometric_ops_turn_about_the_centre_and_shift_at_most_0_15_of_the_side():
    """A bright square in the middle: rotation and shear about the centre leave its centroid in place,
    and a translation moves it along one axis by at most 0.15 of the side (4.2 px at 28)."""
    images = torch.zeros(256, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 12:16, 12:16] = 255
    out = rand_augment(images, 30, "digits", gen(), ops_per_image=1).float()[:, 0]
    mass = out.sum((1, 2))
    assert (mass > 0).all()
    rows, cols = torch.arange(28.0)[:, None], torch.arange(28.0)[None, :]
    dy = (out * rows).sum((1, 2)) / mass - 13.5
    dx = (out * cols).sum((1, 2)) / mass - 13.5
    assert (torch.minimum(dy.abs(), dx.abs()) < 0.2).all()  # never both: no turn about another point
    moved = torch.maximum(dy.abs(), dx.abs())
    assert moved.max() <= 0.15 * 28 + 0.2
    assert (moved > 2).sum() >= 10  # translations happen, about 2/6 of the images, half of them > 2 px


def test_a_tiny_magnitude_moves_nothing():
    """The sampling grid sits on the pixel centres: a near-zero rotation, shear or shift samples every
    pixel where it is (a grid off by half a pixel would also scale the image)."""
    images = uint8_images((64, 1, 28, 28))
    assert torch.equal(rand_augment(images, 1e-3, "digits", gen()), images)


TORCHVISION_COLOUR = {
    "brightness": lambda image, s: TF.adjust_brightness(image, 1 + 0.9 * s),
    "contrast": lambda image, s: TF.adjust_contrast(image, 1 + 0.9 * s),
    "sharpness": lambda image, s: TF.adjust_sharpness(image, 1 + 0.9 * s),
    "solarize": lambda image, s: TF.solarize(image, 255 * (1 - abs(s))),
    "posterize": lambda image, s: TF.posterize(image, int(8 - round(4 * abs(s)))),
    "autocontrast": lambda image, s: TF.autocontrast(image),
    "equalize": lambda image, s: TF.equalize(image),
}


@pytest.mark.parametrize("name", COLOUR_OPS)
@pytest.mark.parametrize("channels", [1, 3])
def test_colour_ops_match_torchvision_image_by_image(name, channels):
    """Each image its own strength in one batched call, against torchvision one image at a time (which
    truncates to uint8 where vitcli rounds, hence the 1)."""
    images = uint8_images((9, channels, 12, 10))
    signed = torch.linspace(-1, 1, 9)
    out = COLOUR[name](images, signed)
    for image, s, got in zip(images, signed.tolist(), out):
        expected = TORCHVISION_COLOUR[name](image, s)
        assert (got.int() - expected.int()).abs().max() <= 1, f"{name} at {s}"


def test_rand_augment_is_repeatable_from_the_generator_alone():
    images = uint8_images((32, 3, 32, 32))
    torch.manual_seed(1)
    a = rand_augment(images, 20, "natural", gen(5))
    torch.manual_seed(2)  # the global RNG plays no part
    b = rand_augment(images, 20, "natural", gen(5))
    c = rand_augment(images, 20, "natural", gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_rand_augment_rejects_unknown_families_and_non_uint8_images():
    with pytest.raises(ValueError, match="family"):
        rand_augment(uint8_images((2, 1, 28, 28)), 9, "faces", gen())
    with pytest.raises(ValueError, match="uint8"):
        rand_augment(torch.rand(2, 1, 28, 28), 9, "digits", gen())


def test_rand_augment_handles_non_square_images_and_clamps_magnitudes_past_30():
    images = uint8_images((16, 3, 24, 40))
    out = rand_augment(images, 100, "natural", gen(), ops_per_image=3)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert torch.equal(out, rand_augment(images, 30, "natural", gen(), ops_per_image=3))


# --- random erasing -----------------------------------------------------------------------------------


def box_masks(boxes: Tensor, height: int, width: int) -> Tensor:
    """(B, H, W) bool from (B, 4) (top, left, h, w), one image at a time: the plain way."""
    masks = torch.zeros(len(boxes), height, width, dtype=torch.bool)
    for mask, (top, left, h, w) in zip(masks, boxes.tolist()):
        mask[top : top + h, left : left + w] = True
    return masks


def test_random_erase_changes_exactly_the_pixels_of_its_boxes():
    images = torch.randn(64, 3, 20, 24, generator=gen(1))
    g = gen(2)
    boxes = erase_boxes(64, 20, 24, 0.5, torch.Generator().set_state(g.get_state()))
    out = random_erase(images, 0.5, g)
    inside = box_masks(boxes, 20, 24)[:, None].expand_as(images)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert torch.equal(out[~inside], images[~inside])  # bit-identical outside the boxes
    assert (out[inside] != images[inside]).all()  # noise everywhere inside
    erased = boxes[:, 2] > 0
    assert 16 <= erased.sum() <= 48
    assert torch.equal(changed_images(out, images), erased)


def test_erase_boxes_lie_inside_the_image_with_the_right_areas_and_shapes():
    H, W = 28, 28
    top, left, h, w = erase_boxes(4000, H, W, 1.0, gen()).unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
    assert (top + h <= H).all() and (left + w <= W).all()
    # Area uniform in [0.02, 1/3] of the image, up to rounding h and w to whole pixels.
    area = H * W
    assert ((h + 0.5) * (w + 0.5) >= 0.02 * area).all() and ((h - 0.5) * (w - 0.5) <= area / 3).all()
    fraction = (h * w).float() / area
    assert fraction.min() < 0.04 and fraction.max() > 0.28
    # Aspect ratio log-uniform in [0.3, 1/0.3]: tall and wide boxes both, and about as many of each.
    log_aspect = (h.float() / w.float()).log()
    assert log_aspect.min() < math.log(0.45) and log_aspect.max() > math.log(1 / 0.45)
    assert abs((log_aspect > 0).float().mean() - (log_aspect < 0).float().mean()) < 0.1
    # Positions spread over the whole range that fits, both ends included.
    assert ((top == 0) & (h < H)).any() and ((top == H - h) & (h < H)).any()
    assert ((left == 0) & (w < W)).any() and ((left == W - w) & (w < W)).any()


def test_erase_boxes_are_zero_for_images_left_alone():
    boxes = erase_boxes(500, 28, 28, 0.3, gen())
    kept = boxes[:, 2] == 0
    assert boxes.dtype == torch.int64 and boxes.shape == (500, 4)
    assert (boxes[kept] == 0).all() and (boxes[~kept, 3] > 0).all()


def test_random_erase_probabilities():
    images = torch.zeros(2000, 1, 12, 12)
    assert torch.equal(random_erase(images, 0.0, gen()), images)
    assert changed_images(random_erase(images, 1.0, gen()), images).all()
    fraction = changed_images(random_erase(images, 0.5, gen()), images).float().mean()
    assert 0.45 <= fraction <= 0.55


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_random_erase_fills_with_standard_normal_noise_in_the_images_dtype(dtype):
    images = torch.full((256, 3, 16, 16), 100.0, dtype=dtype)
    out = random_erase(images, 1.0, gen())
    assert out.dtype == dtype
    noise = out[out != 100].float()
    assert noise.numel() > 256 * 3 * 256 * 0.02
    assert abs(noise.mean()) < 0.05 and 0.95 < noise.std() < 1.05


def test_random_erase_is_repeatable_from_the_generator_alone():
    images = torch.randn(32, 3, 16, 16, generator=gen())
    torch.manual_seed(1)
    a = random_erase(images, 0.5, gen(5))
    torch.manual_seed(2)
    b = random_erase(images, 0.5, gen(5))
    c = random_erase(images, 0.5, gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
