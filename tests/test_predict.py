"""`vitcli predict` and `vitcli.lab.prediction`: image files prepared as in training, top-k, the
brightness check."""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from cli_helpers import run, train
from conftest import shared_mnist
from fakedata import class_images, write_cifar10, write_mnist
from PIL import Image
from rich.console import Console
from safetensors.torch import save_file
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from vitcli.cli.predict import predictions_table
from vitcli.data.datasets import Split
from vitcli.data.preprocessing import Preprocessing
from vitcli.lab.prediction import Brightness, Prediction, PredictReport, fit_size, predict, training_mean
from vitcli.training.checkpoint import load_checkpoint
from vitcli.training.evaluation import evaluate


@dataclass
class Trained:
    mnist: Path  # run directories
    cifar: Path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Trained:
    """A tiny ViT on fake MNIST and one on fake CIFAR-10, trained once for the whole module."""
    base = tmp_path_factory.mktemp("predict")
    with pytest.MonkeyPatch.context() as mp:  # the autouse isolation is per test; this runs before it
        mp.setenv("VITCLI_CACHE_DIR", str(base / "cache"))
        mp.setenv("VITCLI_DATA_DIR", str(base / "home-data"))
        tiny = ("--embed-dim", 8, "--depth", 1, "--subset", 200)
        done = train(base, write_mnist(base / "mnist"), *tiny, "--name", "mnist")
        assert done.exit_code == 0, done.output
        cifar = write_cifar10(base / "cifar")
        done = train(base, cifar, "--dataset", "cifar10", "--patch-size", 8, *tiny, "--name", "cifar")
        assert done.exit_code == 0, done.output
    return Trained(base / "runs" / "mnist", base / "runs" / "cifar")


def training_image(channels: int, size: int, label: int = 3) -> np.ndarray:
    """An (H, W, C) uint8 image of class `label` from the fake training data's distribution."""
    images, labels = class_images(40, 10, (size, size), channels, seed=0)
    return images[int(np.flatnonzero(labels == label)[0])]


def save(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
    return path


def direct(run_dir: Path, images: torch.Tensor) -> torch.Tensor:
    """softmax(model(preprocess(images))) for uint8 (N, C, H, W), straight from the checkpoint."""
    checkpoint = load_checkpoint(run_dir)
    with torch.no_grad():
        return torch.softmax(checkpoint.model(checkpoint.preprocessing.on("cpu")(images)), dim=1)


def probabilities(entry: dict, classes: list[str]) -> torch.Tensor:
    """A JSON entry's top-k as a (classes,) vector (zero where not shown)."""
    out = torch.zeros(len(classes))
    for row in entry["top_k"]:
        out[classes.index(row["class"])] = row["probability"]
    return out


def as_json(*args) -> tuple[dict, str]:
    done = run("predict", *args, "--device", "cpu", "--json")
    assert done.exit_code == 0, done.output
    stdout = done.stdout.strip()
    return json.loads(stdout), done.stderr


@pytest.mark.parametrize("kind", ["mnist", "cifar"])
def test_a_training_image_gets_the_probabilities_the_model_gives_its_tensor(trained, tmp_path, kind):
    run_dir, (channels, size) = getattr(trained, kind), {"mnist": (1, 28), "cifar": (3, 32)}[kind]
    array = training_image(channels, size)
    report, stderr = as_json(run_dir, save(tmp_path / "three.png", array), "--top-k", 10)
    tensor = torch.from_numpy(array).permute(2, 0, 1)[None]
    expected = direct(run_dir, tensor)[0]
    classes = list(load_checkpoint(run_dir).info.classes)
    entry = report["images"][0]
    torch.testing.assert_close(probabilities(entry, classes), expected, atol=1e-5, rtol=0)
    assert entry["note"] is None and entry["prepared"] == [] and stderr == ""
    # `vitcli eval`'s evaluation counts the image right when labelled with predict's top class.
    top = classes.index(entry["top_k"][0]["class"])
    checkpoint = load_checkpoint(run_dir)
    preprocess, cpu = checkpoint.preprocessing.on("cpu"), torch.device("cpu")
    result = evaluate(checkpoint.model, Split(tensor, torch.tensor([top])), preprocess, cpu, len(classes))
    assert result.accuracy == 1.0


def test_python_api_gives_the_cli_report(trained, tmp_path):
    image = save(tmp_path / "three.png", training_image(1, 28))
    report = predict(trained.mnist, [image], top_k=3, device="cpu")
    from_cli, _ = as_json(trained.mnist, image, "--top-k", 3)
    assert report.to_dict() == from_cli
    assert [p for _, p in report.images[0].top_k] == sorted(
        (p for _, p in report.images[0].top_k), reverse=True
    )


def test_a_dark_digit_on_light_paper_gets_a_note_and_invert_removes_it(trained, tmp_path):
    digit = training_image(1, 28)
    paper = save(tmp_path / "paper.png", 255 - digit)
    report, stderr = as_json(trained.mnist, paper)
    check = report["images"][0]["brightness"]
    assert check["far"] and check["advice"] == "invert" and check["mean"] > 0.75
    assert "paper.png is much brighter than the mnist training images" in stderr
    assert "try --invert" in stderr and report["images"][0]["note"] in " ".join(stderr.split())
    inverted, stderr = as_json(trained.mnist, paper, "--invert", "--top-k", 10)
    assert inverted["images"][0]["note"] is None and stderr == ""
    classes = list(load_checkpoint(trained.mnist).info.classes)
    expected = direct(trained.mnist, torch.from_numpy(digit).permute(2, 0, 1)[None])[0]
    torch.testing.assert_close(probabilities(inverted["images"][0], classes), expected, atol=1e-5, rtol=0)


def test_invert_that_takes_an_image_away_from_the_training_images_is_said(trained, tmp_path):
    digit = save(tmp_path / "digit.png", training_image(1, 28))
    report, stderr = as_json(trained.mnist, digit, "--invert")
    assert report["images"][0]["brightness"]["advice"] == "no-invert"
    assert "digit.png with --invert is much brighter" in stderr and "leave out --invert" in stderr


def test_an_image_inversion_cannot_help_gets_a_plain_note(trained, tmp_path):
    gray = save(tmp_path / "gray.png", np.full((28, 28, 1), 200, np.uint8))  # mean 0.78, inverted 0.22
    cifar_gray = save(tmp_path / "white.png", np.full((32, 32, 3), 255, np.uint8))  # 1.0; inverted 0.0
    report, stderr = as_json(trained.cifar, cifar_gray)
    assert report["images"][0]["brightness"]["far"] and report["images"][0]["brightness"]["advice"] is None
    assert "--invert" not in stderr and "the model has not seen images like it" in stderr
    report, _ = as_json(trained.mnist, gray)
    assert report["images"][0]["brightness"]["advice"] == "invert"


def test_a_colour_image_for_a_gray_model_is_converted_as_pil_converts_it(trained, tmp_path):
    rng = np.random.default_rng(5)
    colour = training_image(3, 28)
    colour[..., 0] = rng.integers(0, 60, (28, 28), dtype=np.uint8)  # a coloured background
    report, stderr = as_json(trained.mnist, save(tmp_path / "colour.png", colour), "--top-k", 10)
    gray = np.asarray(Image.fromarray(colour).convert("L"))
    expected = direct(trained.mnist, torch.from_numpy(gray.copy())[None, None])[0]
    classes = list(load_checkpoint(trained.mnist).info.classes)
    torch.testing.assert_close(probabilities(report["images"][0], classes), expected, atol=1e-5, rtol=0)
    assert report["images"][0]["prepared"] == ["colour converted to gray"]
    assert "colour.png: colour converted to gray" in stderr


def test_a_larger_wider_image_is_centre_cropped_and_resized_with_antialiasing(trained, tmp_path):
    big = np.array(Image.fromarray(training_image(1, 28)[..., 0]).resize((84, 84)))
    wide = np.concatenate([np.zeros((84, 20), np.uint8), big, np.zeros((84, 20), np.uint8)], axis=1)
    report, stderr = as_json(trained.mnist, save(tmp_path / "wide.png", wide[..., None]), "--top-k", 10)
    steps = ["centre-cropped 124x84 -> 84x84", "resized 84x84 -> 28x28"]
    assert report["images"][0]["prepared"] == steps
    assert f"wide.png: {', '.join(steps)}" in stderr
    small = TF.resize(torch.from_numpy(big)[None], [28, 28], InterpolationMode.BILINEAR, antialias=True)
    expected = direct(trained.mnist, small[None])[0]
    classes = list(load_checkpoint(trained.mnist).info.classes)
    torch.testing.assert_close(probabilities(report["images"][0], classes), expected, atol=1e-5, rtol=0)


def test_fit_size_crops_a_tall_image_top_and_bottom_and_keeps_a_fitting_one():
    tall = torch.arange(60 * 30, dtype=torch.int32).view(1, 60, 30).to(torch.uint8)
    out, steps = fit_size(tall, (10, 10))
    assert out.shape == (1, 10, 10) and out.dtype == torch.uint8
    assert steps == ["centre-cropped 30x60 -> 30x30", "resized 30x30 -> 10x10"]
    same, steps = fit_size(tall, (60, 30))
    assert same is tall and steps == []
    up, steps = fit_size(torch.zeros(3, 14, 14, dtype=torch.uint8), (28, 28))
    assert up.shape == (3, 28, 28) and steps == ["resized 14x14 -> 28x28"]


def test_a_gray_image_for_an_rgb_model_is_repeated_into_three_channels(trained, tmp_path):
    gray = training_image(1, 32)
    report, stderr = as_json(trained.cifar, save(tmp_path / "gray.png", gray), "--top-k", 10)
    expected = direct(trained.cifar, torch.from_numpy(gray).permute(2, 0, 1)[None].expand(1, 3, 32, 32))[0]
    classes = list(load_checkpoint(trained.cifar).info.classes)
    torch.testing.assert_close(probabilities(report["images"][0], classes), expected, atol=1e-5, rtol=0)
    assert report["images"][0]["prepared"] == ["gray repeated into RGB"]


def test_json_has_one_entry_per_image_with_top_k_classes(trained, tmp_path):
    files = [save(tmp_path / f"{i}.png", training_image(1, 28, label=i)) for i in (1, 7)]
    report, _ = as_json(trained.mnist, *files, "--top-k", 3)
    assert set(report) == {"checkpoint", "dataset", "images"} and report["dataset"] == "mnist"
    assert [e["path"] for e in report["images"]] == [str(f) for f in files]
    classes = load_checkpoint(trained.mnist).info.classes
    for entry in report["images"]:
        assert set(entry) == {"path", "top_k", "note", "brightness", "prepared"}
        assert len(entry["top_k"]) == 3 and all(row["class"] in classes for row in entry["top_k"])
        shown = [row["probability"] for row in entry["top_k"]]
        assert shown == sorted(shown, reverse=True) and 0 < sum(shown) <= 1 + 1e-6
    everything, stderr = as_json(trained.mnist, files[0], "--top-k", 50)
    assert len(everything["images"][0]["top_k"]) == 10 and "--top-k 50 is more than the model's 10" in stderr
    assert sum(row["probability"] for row in everything["images"][0]["top_k"]) == pytest.approx(1, abs=1e-5)


def test_the_table_shows_every_image_and_fits_80_columns(trained, tmp_path):
    files = [save(tmp_path / f"{i}.png", training_image(1, 28, label=i)) for i in (2, 5)]
    done = run("predict", trained.mnist, *files, "--device", "cpu", "--top-k", 2)
    assert done.exit_code == 0, done.output
    for file in files:
        assert file.name in done.stdout
    assert len(re.findall(r"\d+\.\d% *$|<0\.1% *$", done.stdout, re.M)) == 4
    long = "a class with a rather long name that must wrap somewhere"
    report = PredictReport(
        Path("runs") / ("x" * 70) / "model.safetensors",
        "folder:x",
        [long, "b"],
        [
            Prediction(
                tmp_path / ("y" * 60 + ".png"),
                torch.tensor([0.9, 0.1]),
                [(long, 0.987654), ("b", 3e-5)],
                [],
                None,
                None,
            )
        ],
    )
    out = io.StringIO()
    Console(file=out, width=80).print(predictions_table(report))
    lines = out.getvalue().splitlines()
    assert max(map(len, lines)) <= 80
    assert any(line.rstrip().endswith("98.8%") for line in lines)
    assert any(line.rstrip().endswith("<0.1%") for line in lines)


def one_error_line(done) -> str:
    assert done.exit_code == 1, done.output
    assert "Traceback" not in done.output and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


def test_bad_input_is_one_error_line(trained, tmp_path):
    good = save(tmp_path / "good.png", training_image(1, 28))
    missing = one_error_line(run("predict", trained.mnist, good, tmp_path / "nope.png"))
    assert "nope.png does not exist" in missing
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    broken = one_error_line(run("predict", trained.mnist, tmp_path / "broken.png"))
    assert "cannot read image" in broken and "broken.png" in broken
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    other = one_error_line(run("predict", tmp_path / "other.safetensors", good))
    assert "without vitcli metadata" in other
    assert "does not exist" in one_error_line(run("predict", tmp_path / "no-run", good))
    assert "--top-k must be at least 1" in one_error_line(run("predict", trained.mnist, good, "--top-k", 0))
    assert "--batch-size" in one_error_line(run("predict", trained.mnist, good, "--batch-size", 0))


def test_no_real_mnist_training_image_is_far_and_every_inverted_one_is():
    """The documented rule against the real data, where a copy of MNIST is at hand."""
    root = shared_mnist()
    if root is None:
        pytest.skip("no real MNIST here (VITCLI_SHARED_DATA)")
    raw = np.fromfile(root / "MNIST" / "raw" / "train-images-idx3-ubyte", np.uint8, offset=16)
    means = raw.reshape(-1, 28 * 28).mean(1) / 255
    assert len(means) == 60_000
    for mean in (means.min(), means.max()):
        assert not Brightness(float(mean), 0.1307, inverted=False).far
        assert Brightness(float(1 - mean), 0.1307, inverted=True).advice == "no-invert"
        assert Brightness(float(1 - mean), 0.1307, inverted=False).advice == "invert"


def test_the_training_mean_of_a_model_normalised_with_its_pretrained_weights_statistics():
    """A fine-tuned timm ViT normalises with its weights' statistics: the data set's published mean is
    used instead, and there is none for an image folder."""
    weights = SimpleNamespace(normalisation="weights")
    imagenet = Preprocessing((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    cifar10 = (0.4914 + 0.4822 + 0.4465) / 3
    for name, expected in (("mnist", 0.1307), ("cifar10", cifar10), ("folder:x", None)):
        tuned = SimpleNamespace(adaptation=weights, info=SimpleNamespace(name=name), preprocessing=imagenet)
        assert training_mean(tuned) == (None if expected is None else pytest.approx(expected))
    own = SimpleNamespace(adaptation=None, info=SimpleNamespace(name="folder:x"), preprocessing=imagenet)
    assert training_mean(own) == pytest.approx((0.485 + 0.456 + 0.406) / 3)


def test_a_phone_photo_is_scored_upright_and_an_animation_by_its_first_frame_with_a_note(trained, tmp_path):
    """A JPEG stored sideways with EXIF orientation 6 (turn 90° clockwise) is the upright image to the
    model; a GIF of two frames is its first, and each says so."""
    upright = training_image(3, 32)
    save(tmp_path / "upright.png", upright)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned 90° anticlockwise: a viewer turns it clockwise
    Image.fromarray(np.rot90(upright)).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    frames = [Image.fromarray(upright), Image.fromarray(255 - upright)]
    frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:])
    save(tmp_path / "sideways.png", np.ascontiguousarray(np.rot90(upright)))  # the pixels as stored
    files = [tmp_path / n for n in ("upright.png", "phone.jpg", "moving.gif", "sideways.png")]
    straight, phone, moving, sideways = predict(trained.cifar, files, device="cpu").images

    def off(p):
        return (p.probabilities - straight.probabilities).abs().max().item()

    assert off(phone) < off(sideways) / 4  # the JPEG's loss only, not the turn
    assert phone.steps == ["turned upright (EXIF orientation 6)"] and sideways.steps == []
    assert moving.steps == ["the first of its 2 frames"]
    assert off(moving) < off(sideways) / 4  # the GIF's palette only
    said = run("predict", trained.cifar, tmp_path / "phone.jpg", "--device", "cpu")
    assert said.exit_code == 0 and "turned upright (EXIF orientation 6)" in said.stderr
