"""Image folders as users have them: links, loops, hidden files, mixed modes, broken and huge files.

Each fault is either read correctly or refused with one DataError line naming the file; nothing hangs
(a walk that would loop runs in a thread with a time limit) and nothing is decoded wrongly in silence.
"""

import os
import struct
import threading
import warnings
import zlib

import numpy as np
import pytest
import torch
from fakedata import write_image_folder, write_mnist
from PIL import Image
from typer.testing import CliRunner

from vitcli.cli import app
from vitcli.data import datasets, folders, load_splits
from vitcli.errors import DataError
from vitcli.settings.config import DataConfig

SMALL = {"train": 4, "test": 2, "val": 2}  # images per class: 12 train and 6 test images for 3 classes


def make(root, **kwargs):
    return write_image_folder(root, per_class=SMALL, **kwargs)


def load(root, notes=None):
    on_note = notes.append if notes is not None else None
    return load_splits(DataConfig(dataset=f"folder:{root}", val_size=0), on_note=on_note)


def within(seconds, fn):
    """fn() in a thread; fails (instead of hanging the suite) when it takes longer than `seconds`."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            result["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def link(path, target):
    try:
        os.symlink(target, path)
    except (OSError, NotImplementedError) as e:
        pytest.skip(f"no symbolic links here ({e})")


def png_header(width, height):
    """A PNG file that says it is width x height (8-bit gray) but holds almost no data."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1000)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def assert_same(a, b):
    for split in ("train", "test"):
        torch.testing.assert_close(a.get(split).images, b.get(split).images)
        torch.testing.assert_close(a.get(split).labels, b.get(split).labels)


# --- links ----------------------------------------------------------------------------------------------


def test_link_loops_and_links_to_other_classes_are_left_out_with_a_note(tmp_path):
    clean = load(make(tmp_path / "clean"))
    root = make(tmp_path / "d")
    cat = root / "train" / "cat"
    link(cat / "loop", ".")  # two loops: walking them would never end
    link(cat / "up", "..")
    link(cat / "dogs", "../dog")  # would count the dogs as cats
    (cat / "sub").mkdir()
    link(cat / "sub" / "back", "../..")
    notes = []
    splits = within(60, lambda: load(root, notes))
    assert_same(splits, clean)
    assert len(notes) == 1 and "left out 4 linked folder(s)" in notes[0] and "loop" in notes[0]


def test_links_out_of_the_data_set_are_followed_once(tmp_path):
    root = make(tmp_path / "d")
    extra = tmp_path / "extra"
    make(tmp_path / "other")
    (tmp_path / "other" / "train" / "dog").rename(extra)  # 4 dog pictures outside the data set
    link(root / "train" / "cat" / "more", extra)
    link(root / "train" / "cat" / "again", extra)  # the same folder twice: read once
    link(extra / "loop", root / "train" / "cat")  # and back in: left out
    splits = within(60, lambda: load(root))
    assert len(splits.train) == 12 + 4
    assert (splits.train.labels == 0).sum() == 4 + 4


def test_class_folders_may_be_links_but_not_to_each_other(tmp_path):
    root = make(tmp_path / "d")
    (root / "test" / "fish").rename(tmp_path / "fish")
    link(root / "test" / "fish", tmp_path / "fish")
    assert len(load(root).test) == 6
    twin = make(tmp_path / "twin")
    os.rename(twin / "train" / "dog", tmp_path / "dogs")
    link(twin / "train" / "dog", "cat")  # the cats again, labelled dog
    with pytest.raises(DataError, match=r"train/dog and .*train/cat are the same folder .*its own images"):
        load(twin)


def test_a_class_folder_linked_to_the_data_set_is_refused(tmp_path):
    root = make(tmp_path / "d")
    link(root / "train" / "bird", "..")
    link(root / "test" / "bird", "..")
    with pytest.raises(
        DataError, match=r"train/bird is a link to .*which holds other folders of the data set"
    ):
        within(60, lambda: load(root))


# --- modes -----------------------------------------------------------------------------------------------


def test_a_gray_jpeg_among_rgb_images_is_repeated_into_three_channels(tmp_path):
    root = make(tmp_path / "d")
    gray = np.random.default_rng(0).integers(0, 256, (16, 24), dtype=np.uint8)
    file = root / "train" / "cat" / "0000.jpg"  # sorts first: it once decided the whole set was gray
    Image.fromarray(gray, "L").save(file)
    splits = load(root)
    assert splits.info.channels == 3 and splits.train.images.shape == (13, 3, 16, 24)
    decoded = torch.from_numpy(np.array(Image.open(file).convert("L")))
    first = splits.train.images[0]
    assert all(torch.equal(first[c], decoded) for c in range(3))
    assert len(splits.stats.mean) == 3


def test_gray_modes_give_one_channel_and_16_bit_is_scaled(tmp_path):
    root = make(tmp_path / "d", mode="L")
    cat = root / "train" / "cat"
    deep = np.full((16, 24), 40000, dtype=np.uint16)
    Image.fromarray(deep).save(cat / "a16.png")
    assert Image.open(cat / "a16.png").mode == "I;16"
    Image.new("1", (24, 16), 1).save(cat / "b1.png")
    Image.new("LA", (24, 16), (77, 10)).save(cat / "c.png")
    splits = load(root)
    assert splits.info.channels == 1 and len(splits.train) == 15
    added = splits.train.images[splits.train.labels == 0][-3:]  # the cats, named to sort last
    assert [int(image[0, 0, 0]) for image in added] == [40000 >> 8, 255, 77]


def test_one_colour_image_in_the_test_split_makes_every_split_rgb(tmp_path):
    root = make(tmp_path / "d", mode="L")
    Image.new("P", (24, 16)).save(root / "test" / "dog" / "zz.png")
    splits = load(root)
    assert splits.info.channels == 3 and splits.train.images.shape[1] == 3
    assert torch.equal(splits.train.images[:, 0], splits.train.images[:, 2])


# --- stray files -----------------------------------------------------------------------------------------


def test_hidden_and_non_image_files_are_left_out(tmp_path):
    clean = load(make(tmp_path / "clean"))
    root = make(tmp_path / "d")
    cat = root / "train" / "cat"
    (cat / "._0000.png").write_bytes(b"\x00\x05\x16\x07 a resource fork")
    (cat / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "train" / ".DS_Store").write_bytes(b"Bud1")
    (cat / "notes.txt").write_text("not a picture")
    (root / "train" / ".ipynb_checkpoints").mkdir()
    Image.new("RGB", (24, 16)).save(root / "train" / ".ipynb_checkpoints" / "x.png")
    (cat / ".hidden").mkdir()
    Image.new("RGB", (24, 16)).save(cat / ".hidden" / "x.png")
    assert_same(load(root), clean)


@pytest.mark.parametrize(
    "fault, message",
    [
        (
            "dangling",
            r"train/cat/x.png is a broken link \(to .*nowhere.png, which does not exist\); remove it",
        ),
        ("text", r"cannot read image .*train/cat/x.png \(not an image file that PIL can read\); replace it"),
        ("truncated", r"cannot read image .*train/cat/x.png \(image file is truncated\)"),
        ("fifo", r"train/cat/x.png is not a regular file; remove it"),
    ],
)
def test_files_that_are_not_images_are_one_line(tmp_path, fault, message):
    root = make(tmp_path / "d")
    file = root / "train" / "cat" / "x.png"
    if fault == "dangling":
        link(file, tmp_path / "nowhere.png")
    elif fault == "text":
        file.write_text("hello")
    elif fault == "truncated":
        good = (root / "train" / "cat" / "0000.png").read_bytes()
        file.write_bytes(good[: len(good) // 2])
    elif not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    else:
        os.mkfifo(file)
    with pytest.raises(DataError, match=message):
        within(60, lambda: load(root))


# --- sizes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size, pixels",
    [((10_000, 10_000), "10000x10000, 100,000,000 pixels"), ((100_000, 100_000), "10,000,000,000 pixels")],
)
def test_decompression_bombs_are_refused_without_decoding(tmp_path, size, pixels):
    root = make(tmp_path / "d")
    (root / "test" / "dog" / "bomb.png").write_bytes(png_header(*size))
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(DataError) as raised:
            load(root)
    assert str(raised.value).startswith(
        f"{root / 'test' / 'dog' / 'bomb.png'} is too large to decode ({pixels};"
    )
    assert "resize it, or remove it" in str(raised.value)


def test_images_of_another_size_name_both_files(tmp_path):
    root = make(tmp_path / "d")
    Image.new("RGB", (20, 10)).save(root / "test" / "fish" / "odd.png")
    with pytest.raises(
        DataError, match=r"test/fish/odd.png is 20x10 pixels but .*train/cat/0\d+.png is 24x16"
    ):
        load(root)


# --- folders ---------------------------------------------------------------------------------------------


def test_an_empty_class_folder(tmp_path):
    root = make(tmp_path / "d")
    for split in ("train", "test"):
        (root / split / "bird").mkdir()
    with pytest.raises(DataError, match=r"class folder .*train/bird has no images; put images in it \(.jpg"):
        load(root)
    (root / "train" / "bird" / "a.gif").write_bytes(b"GIF89a")
    with pytest.raises(
        DataError, match=r"train/bird has no images \(its 1 file\(s\), such as a.gif, are not"
    ):
        load(root)


def test_an_empty_split_folder(tmp_path):
    root = make(tmp_path / "d")
    (root / "val").mkdir()
    (root / "val" / ".DS_Store").write_bytes(b"Bud1")
    with pytest.raises(DataError, match=r"/val has no class folders; .*or remove the empty val/ folder"):
        load(root)


def test_splits_with_other_class_folders(tmp_path):
    root = make(tmp_path / "d")
    (root / "test" / "fish").rename(root / "test" / "fishes")
    with pytest.raises(
        DataError, match=r"test/ lacks fish; test/ also has fishes\); every split needs the same"
    ):
        load(root)


def test_the_decoded_folder_is_cached(tmp_path, monkeypatch):
    root = make(tmp_path / "d")
    first = load(root)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folders, "decode_folder", no_decoding)
    assert_same(load(root), first)
    Image.new("RGB", (24, 16)).save(root / "train" / "dog" / "new.png")
    with pytest.raises(AssertionError, match="decoded again"):
        load(root)


# --- labels of any source ---------------------------------------------------------------------------------


def _idx_labels(labels):
    return struct.pack(">BBBBI", 0, 0, 8, 1, len(labels)) + bytes(labels)


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            [12] + [i % 10 for i in range(599)],
            r"the train labels of mnist include 12 \(1 out of range\), but",
        ),
        ([i % 10 for i in range(500)], r"the train split of mnist has 600 images but 500 labels"),
        ([i % 9 for i in range(600)], r"no training image of mnist is labelled '9 - nine' \(class 9\)"),
    ],
)
def test_damaged_labels_are_refused_before_training(tmp_path, labels, message):
    root = write_mnist(tmp_path / "data")
    (root / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(_idx_labels(labels))
    with pytest.raises(DataError, match=message + r".*MNIST are damaged: replace them with the original"):
        load_splits(DataConfig(data_dir=str(root)), download=False)


def test_labels_are_checked_in_every_split():
    info = datasets.DatasetInfo("x", 1, 2, 2, ["a", "b"], "digits")
    good = datasets.Split(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, 1]))
    bad = datasets.Split(torch.zeros(2, 1, 2, 2, dtype=torch.uint8), torch.tensor([0, -1]))
    datasets.check_labels(info, {"train": good, "val": None, "test": good}, "fix it")
    with pytest.raises(DataError, match=r"the test labels of x include -1 .*labels 0 to 1\); fix it"):
        datasets.check_labels(info, {"train": good, "val": None, "test": bad}, "fix it")


# --- the command line -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["not an image", "bomb"])
def test_train_on_a_broken_folder_is_one_error_line(tmp_path, fault):
    root = make(tmp_path / "d")
    file = root / "train" / "dog" / "x.png"
    file.write_bytes(b"hello" if fault == "not an image" else png_header(30_000, 30_000))
    out = tmp_path / "runs"
    args = ["train", "--dataset", f"folder:{root}", "--patch-size", "4", "--epochs", "1", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--device", "cpu"])
    assert result.exit_code == 1 and type(result.exception) is SystemExit, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and str(file) in lines[0]
    assert "Traceback" not in result.output and not out.exists()
