"""The decoded-data cache: damaged cache files are decoded again with a note, never loaded as data, and
the cache key follows the content of the source files, not only their sizes and times."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from fakedata import class_images
from PIL import Image
from safetensors.torch import save_file

from vitcli.data import cache, datasets
from vitcli.data.datasets import load_splits
from vitcli.settings.config import DataConfig


def load(data_dir: Path, notes: list[str] | None = None):
    on_note = notes.append if notes is not None else None
    return load_splits(DataConfig(data_dir=str(data_dir), val_size=0), download=False, on_note=on_note)


def cache_files() -> list[Path]:
    return sorted((cache.cache_root() / "tensors").glob("mnist-*.safetensors"))


def no_decoding(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(datasets, "_open_torchvision", fail)


def tensor_bytes(path: Path, key: str) -> tuple[int, int]:
    """(start, end) in the file of one tensor's bytes, from the safetensors header."""
    data = path.read_bytes()
    (header_size,) = struct.unpack("<Q", data[:8])
    start, end = json.loads(data[8 : 8 + header_size])[key]["data_offsets"]
    return 8 + header_size + start, 8 + header_size + end


def assert_same(a, b) -> None:
    for split in ("train", "test"):
        assert torch.equal(getattr(a, split).images, getattr(b, split).images)
        assert torch.equal(getattr(a, split).labels, getattr(b, split).labels)
    assert a.info == b.info


def flip_bytes(path: Path) -> None:
    start, end = tensor_bytes(path, "test_images")
    data = bytearray(path.read_bytes())
    middle = (start + end) // 2
    for i in range(middle, middle + 4):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def garble_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:24] = b"#" * 16
    path.write_bytes(bytes(data))


def older_format(path: Path) -> None:
    from safetensors.torch import load_file

    save_file(load_file(str(path)), str(path), metadata={"format": "vitcli-data/1", "classes": "[]"})


def other_classes(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        names = f.keys()
        meta, tensors = f.metadata(), {key: f.get_tensor(key) for key in names}
    save_file(tensors, str(path), metadata={**meta, "classes": json.dumps([str(i) for i in range(10)])})


@pytest.mark.parametrize(
    "damage, reason",
    [
        (flip_bytes, "were damaged (checksum mismatch)"),
        (truncate, "were damaged (cannot be read"),
        (garble_header, "were damaged (cannot be read"),
        (older_format, "older cache format (vitcli-data/1"),
        (other_classes, "were damaged (checksum mismatch)"),
    ],
)
def test_a_damaged_cache_file_is_decoded_again_with_a_note(mnist_dir, damage, reason):
    first = load(mnist_dir)
    (path,) = cache_files()
    size = path.stat().st_size
    damage(path)
    if damage is flip_bytes:
        assert path.stat().st_size == size
    notes: list[str] = []
    again = load(mnist_dir, notes)
    assert_same(again, first)
    assert len(notes) == 1 and reason in notes[0] and str(path) in notes[0], notes
    assert notes[0].endswith("decoded mnist again")
    assert cache_files() == [path]


def test_a_rebuilt_cache_file_is_used_next_time(mnist_dir, monkeypatch):
    first = load(mnist_dir)
    (path,) = cache_files()
    flip_bytes(path)
    load(mnist_dir, [])
    no_decoding(monkeypatch)
    notes: list[str] = []
    assert_same(load(mnist_dir, notes), first)
    assert notes == []


def test_an_intact_cache_is_used_without_decoding(mnist_dir, monkeypatch):
    first = load(mnist_dir)
    no_decoding(monkeypatch)
    notes: list[str] = []
    assert_same(load(mnist_dir, notes), first)
    assert notes == []
    assert load_splits(DataConfig(data_dir=str(mnist_dir)), download=False).test.images.shape[0] == 200


def test_a_source_changed_in_place_with_the_same_size_and_time_is_decoded_again(mnist_dir):
    first = load(mnist_dir)
    raw = mnist_dir / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    before = raw.stat()
    data = bytearray(raw.read_bytes())
    data[16 : 16 + 28 * 28] = bytes(255 - b for b in data[16 : 16 + 28 * 28])  # invert the first image
    raw.write_bytes(bytes(data))
    os.utime(raw, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert raw.stat().st_size == before.st_size and raw.stat().st_mtime_ns == before.st_mtime_ns

    notes: list[str] = []
    again = load(mnist_dir, notes)
    assert torch.equal(again.test.images[0], 255 - first.test.images[0])
    assert torch.equal(again.test.images[1:], first.test.images[1:])
    assert notes == []  # a changed source is not a damaged cache
    assert len(cache_files()) == 2


def test_an_image_changed_in_place_in_a_folder_is_decoded_again(tmp_path):
    # BMP files, so that a changed image keeps its file's size.
    images, labels = class_images(24, 2, (16, 16), 1, seed=0)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = tmp_path / "pets" / ("train" if i < 16 else "test") / "ab"[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0], "L").save(folder / f"{i:02d}.bmp")
    config = DataConfig(dataset=f"folder:{tmp_path / 'pets'}", val_size=0)
    first = load_splits(config)
    file = sorted((tmp_path / "pets" / "test" / "a").iterdir())[0]
    before = file.stat()
    with Image.open(file) as image:
        Image.fromarray(255 - np.asarray(image), "L").save(file)
    os.utime(file, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert file.stat().st_size == before.st_size and file.stat().st_mtime_ns == before.st_mtime_ns

    again = load_splits(config)
    assert torch.equal(again.test.images[0], 255 - first.test.images[0])
    assert torch.equal(again.test.images[1:], first.test.images[1:])


def test_fingerprint_of_large_files_covers_their_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(cache, "WHOLE_FILE_LIMIT", 1000)
    monkeypatch.setattr(cache, "EDGE_BYTES", 100)
    big = tmp_path / "src" / "big"
    big.parent.mkdir()
    big.write_bytes(bytes(2000))
    before = big.stat()

    def change(offset: int) -> str:
        data = bytearray(bytes(2000))
        data[offset] = 1
        big.write_bytes(bytes(data))
        os.utime(big, ns=(before.st_atime_ns, before.st_mtime_ns))
        return cache.fingerprint(big.parent)

    big.write_bytes(bytes(2000))
    os.utime(big, ns=(before.st_atime_ns, before.st_mtime_ns))
    original = cache.fingerprint(big.parent)
    assert change(1000) == original  # the middle of a file over the limit is not read
    assert change(10) != original and change(1995) != original


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fingerprint_does_not_hang_on_special_or_unreadable_files(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "a").write_bytes(b"abc")
    os.mkfifo(source / "pipe")
    (source / "dangling").symlink_to(source / "nowhere")
    first = cache.fingerprint(source)
    assert cache.fingerprint(source) == first
    (source / "a").write_bytes(b"abd")
    assert cache.fingerprint(source) != first
