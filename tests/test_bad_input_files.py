"""Bad files through the CLI: checkpoints given to eval and attention, and image folders given to train.

The contract and the earlier run no bad command may touch are test_bad_input.py's.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
import test_bad_input
import torch
from fakedata import write_cifar10, write_image_folder
from PIL import Image
from safetensors.torch import load_file, save_file
from test_bad_input import check, invoke

from vitcli.data import ChannelStats, DatasetInfo
from vitcli.models.build import build_model
from vitcli.settings.config import load_config
from vitcli.training.checkpoint import read_metadata, save_checkpoint

# The module-scoped fixtures, again for this module: its own earlier run, one torch thread.
earlier, one_thread = test_bad_input.earlier, test_bad_input.one_thread


def edited_header(edit):
    """The earlier run's checkpoint with its metadata changed by `edit` (as in test_checkpoint.py)."""

    def make(tmp_path, run):
        meta = read_metadata(run / "model.safetensors")
        parsed = {key: json.loads(meta[key]) for key in ("config", "dataset", "preprocessing")}
        edit(parsed)
        meta.update({key: json.dumps(value) for key, value in parsed.items()})
        return save(tmp_path, load_file(str(run / "model.safetensors")), meta)

    return make


def edited_weights(edit):
    """The earlier run's checkpoint, metadata intact, with its tensors changed by `edit`."""

    def make(tmp_path, run):
        tensors = load_file(str(run / "model.safetensors"))
        edit(tensors)
        return save(tmp_path, tensors, read_metadata(run / "model.safetensors"))

    return make


def save(tmp_path, tensors, metadata=None):
    path = tmp_path / "bad.safetensors"
    save_file(tensors, str(path), metadata=metadata)
    return path


def written(text):
    def make(tmp_path, run):
        (tmp_path / "bad.safetensors").write_text(text)
        return tmp_path / "bad.safetensors"

    return make


def emptied(tmp_path, run):
    (tmp_path / "empty-run").mkdir()
    return tmp_path / "empty-run"


PROJ = "blocks.0.attn.proj.bias"
# How to make the bad checkpoint from (tmp_path, the earlier run dir), and a phrase of the error.
CHECKPOINTS = {
    "missing": (lambda tmp, run: tmp / "missing.safetensors", "missing.safetensors does not exist"),
    "a folder without a checkpoint": (emptied, "empty-run is a directory without model.safetensors"),
    "text": (written("not a checkpoint"), "bad.safetensors is not a safetensors file"),
    "empty": (written(""), "bad.safetensors is not a safetensors file"),
    "no vitcli metadata": (
        lambda tmp, run: save(tmp, {"w": torch.zeros(3)}),
        "bad.safetensors is a safetensors file without vitcli metadata",
    ),
    "heads that do not divide": (
        edited_header(lambda m: m["config"]["model"].update(heads=3)),
        "damaged vitcli metadata (--embed-dim 32 is not divisible by --heads 3",
    ),
    "zero std": (
        edited_header(lambda m: m["preprocessing"].update(std=[0.0])),
        "damaged vitcli metadata (mean must be finite and std positive",
    ),
    "absurd depth": (
        edited_header(lambda m: m["config"]["model"].update(depth=100_000)),
        "damaged vitcli metadata (--depth 100000 is more blocks than any ViT has",
    ),
    "no channels": (
        edited_header(lambda m: m["dataset"].update(channels=0)),
        "28x28x0 images with 10 classes is impossible",
    ),
    "a width the weights lack": (
        edited_header(lambda m: m["config"]["model"].update(embed_dim=16)),
        "tensor 'cls_token' is (1, 1, 32) but the config builds (1, 1, 16)",
    ),
    "a tensor missing": (
        edited_weights(lambda t: t.pop(PROJ)),
        f"lacks tensor '{PROJ}' that its config's model has",
    ),
    "a tensor of another shape": (
        edited_weights(lambda t: t.update({PROJ: torch.zeros(5, 5)})),
        f"tensor '{PROJ}' is (5, 5) but the config builds (32,)",
    ),
    "int8 weights": (  # every weight quantised: it evaluated at 7.48% without a word
        edited_weights(lambda t: t.update({k: v.to(torch.int8) for k, v in t.items()})),
        "is int8, not a float; vitcli checkpoints hold float weights",
    ),
}
COMMANDS = ["eval", "attention"]


def read(tmp_path, earlier, command, checkpoint, *args):
    """`vitcli eval|attention` with the earlier run's data (`args` may override it); attention's pictures
    would go to tmp_path/pics."""
    out = ["--out", tmp_path / "pics"] if command == "attention" else []
    return invoke(command, checkpoint, "--data-dir", earlier.data, "--device", "cpu", *out, *args)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", CHECKPOINTS)
def test_a_bad_checkpoint_is_named(tmp_path, earlier, command, case):
    make, message = CHECKPOINTS[case]
    path = make(tmp_path, earlier.run)
    before = path.read_bytes() if path.is_file() else None
    result = read(tmp_path, earlier, command, path)
    check(result, 1, message, tmp_path, earlier, absent=("pics",))
    assert (path.read_bytes() if path.is_file() else None) == before


def test_attention_on_a_cnn_checkpoint(tmp_path, earlier):
    info = DatasetInfo("mnist", 1, 28, 28, [str(i) for i in range(10)], "digits")
    config = load_config(None, {"model": {"kind": "cnn"}})
    built = build_model(
        config.model, info, ChannelStats((0.1,), (0.3,)), weight_decay=0.0, emit=lambda e: None
    )
    save_checkpoint(tmp_path / "cnn.safetensors", built, config, info, {})
    result = read(tmp_path, earlier, "attention", tmp_path / "cnn.safetensors")
    check(result, 1, "this checkpoint is a CNN, which has no attention to show", tmp_path, earlier, ("pics",))


@pytest.mark.parametrize("command", COMMANDS)
def test_data_of_another_shape(tmp_path, earlier, command):
    cifar = write_cifar10(tmp_path / "cifar", per_batch=10, test=10)
    result = read(tmp_path, earlier, command, earlier.run, "--dataset", "cifar10", "--data-dir", cifar)
    message = "trained on 28x28x1 images with 10 classes but cifar10 has 32x32x3 images with 10 classes"
    check(result, 1, message, tmp_path, earlier, absent=("pics",))


@pytest.mark.parametrize("command", COMMANDS)
def test_a_folder_whose_class_names_differ(tmp_path, earlier, command):
    letters = write_image_folder(
        tmp_path / "letters", tuple("abcdefghij"), (28, 28), "L", {"train": 2, "test": 2}
    )
    result = read(tmp_path, earlier, command, earlier.run, "--dataset", f"folder:{letters}")
    message = f"the classes of folder:{letters} are not the checkpoint's; names without a match"
    check(result, 1, message, tmp_path, earlier, absent=("pics",))
    assert "--match-by-position" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--discard", "1"], "--discard must be in [0, 1), got 1.0"),
        (["--index", "100000"], "--index 100000 is out of range: the test split has 200 images"),
        (["--random", "0"], "--random must be between 1 and 200"),
        (["--image", "{tmp}/nope.png"], "image file {tmp}/nope.png does not exist"),
        (["--image", "{tmp}/text.png"], "{tmp}/text.png is not an image PIL can read"),
    ],
    ids=["discard 1", "index out of range", "random 0", "missing image", "text image"],
)
def test_attention_refuses_bad_images_and_settings(tmp_path, earlier, args, message):
    (tmp_path / "text.png").write_text("not an image")
    args, message = [a.format(tmp=tmp_path) for a in args], message.format(tmp=tmp_path)
    result = read(tmp_path, earlier, "attention", earlier.run, *args)
    check(result, 1, message, tmp_path, earlier, absent=("pics",))


def truncate(path):
    image = sorted((path / "train" / "cat").iterdir())[0]
    image.write_bytes(image.read_bytes()[:100])
    return image


def add(path, name, write):
    write(path / "train" / "cat" / name)
    return path / "train" / "cat" / name


FOLDERS = {
    "missing": (lambda p: shutil.rmtree(p), "folder data set {root} does not exist"),
    "no train/": (lambda p: shutil.rmtree(p / "train"), "folder data set {root} has no train/ folder"),
    "no test/": (lambda p: shutil.rmtree(p / "test"), "folder data set {root} has no test/ folder"),
    "an empty class folder": (
        lambda p: [(p / split / "eel").mkdir() for split in ("train", "test")],
        "class folder {root}/train/eel has no images",
    ),
    "a truncated image": (truncate, "cannot read image {file}"),
    "text named .png": (
        lambda p: add(p, "notes.png", lambda f: f.write_text("hello")),
        "cannot read image {file}",
    ),
    "mixed sizes": (
        lambda p: add(p, "big.png", lambda f: Image.new("RGB", (40, 40)).save(f)),
        "{file} is 40x40 pixels but {root}/train/cat/0000.png is 24x16",
    ),
    "a split with other classes": (
        lambda p: (p / "test" / "fish").rename(p / "test" / "bird"),
        "are not those of {root}/train (test/ lacks fish; test/ also has bird)",
    ),
    "a split missing a class": (
        lambda p: shutil.rmtree(p / "test" / "fish"),
        "the class folders of {root}/test are not those of {root}/train (test/ lacks fish)",
    ),
    "a dangling symlink": (
        lambda p: add(p, "link.png", lambda f: os.symlink(p / "nowhere.png", f)),
        "{file} is a broken link",
    ),
}


@pytest.mark.parametrize("case", FOLDERS)
def test_a_bad_image_folder_is_named(tmp_path, earlier, case):
    spoil, message = FOLDERS[case]
    root = write_image_folder(tmp_path / "pets", per_class={"train": 4, "test": 2})
    file = spoil(root)
    result = invoke(
        "train",
        "--dataset",
        f"folder:{root}",
        "--patch-size",
        4,
        "--epochs",
        1,
        "--device",
        "cpu",
        "--out",
        tmp_path / "runs",
    )
    check(result, 1, message.format(root=root, file=file), tmp_path, earlier)
