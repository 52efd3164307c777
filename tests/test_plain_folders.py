"""A plain image folder, DIR/<class>/*.png without train/ and test/: split with a fixed seed, 20% of
each class held out as the test split; decoding a large folder says how far it is."""

import re

import pytest
import torch
from cli_helpers import run
from fakedata import write_image_folder

from vitcli.data import datasets, folders, load_splits
from vitcli.settings.config import DataConfig
from vitcli.training.checkpoint import load_checkpoint

SETTINGS = ("--epochs", 1, "--batch-size", 16, "--device", "cpu", "--embed-dim", 8, "--depth", 1)
SETTINGS += ("--patch-size", 8)


def folder_train(tmp_path, root, *extra):
    return run("train", "--dataset", f"folder:{root}", *SETTINGS, "--out", tmp_path / "runs", *extra)


def test_a_plain_folder_trains_with_a_stated_held_out_test_split(tmp_path):
    root = write_image_folder(tmp_path / "pics", per_class={"train": 10}, plain=True)  # 3 classes x 10
    result = folder_train(tmp_path, root, "--name", "plain")
    assert result.exit_code == 0, result.output
    note = (
        f"{root} has no train/ and test/: 20% of each class's images held out as the test split "
        "(6 of 30), seed 0"
    )
    assert note in " ".join(result.output.split())
    metrics = load_checkpoint(tmp_path / "runs" / "plain" / "model.safetensors").metrics
    assert metrics["test_count"] == 6  # 2 of each class's 10

    evaluated = run("eval", tmp_path / "runs" / "plain" / "model.safetensors", "--device", "cpu", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert '"count": 6' in evaluated.stdout


def test_the_split_is_stratified_the_same_every_time_and_cached(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "pics", per_class={"train": 11}, plain=True)
    config = DataConfig(dataset=f"folder:{root}", val_size=0)
    first = load_splits(config)
    assert torch.bincount(first.test.labels).tolist() == [2, 2, 2]  # 2.2 of 11, per class
    assert torch.bincount(first.train.labels).tolist() == [9, 9, 9]

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(folders, "decode_plain_folder", no_decoding)
    again = load_splits(config)  # from the cache: the same split
    assert torch.equal(again.test.images, first.test.images) and torch.equal(
        again.train.labels, first.train.labels
    )

    # The split does not follow --seed: two runs with other seeds test on the same images.
    for seed in (1, 2):
        assert folder_train(tmp_path, root, "--seed", seed, "--name", f"s{seed}").exit_code == 0
    counts = {
        load_checkpoint(tmp_path / "runs" / f"s{s}" / "model.safetensors").metrics["test_count"]
        for s in (1, 2)
    }
    assert counts == {6}


def test_decoding_a_large_folder_shows_progress(tmp_path, monkeypatch):
    root = write_image_folder(tmp_path / "pics", per_class={"train": 10}, plain=True)
    monkeypatch.setattr(datasets, "PROGRESS_FROM", 20)  # "large": more than 20 images, so these 30
    result = folder_train(tmp_path, root)
    assert result.exit_code == 0, result.output
    steps = re.findall(r"decoding (\d+) of 30 images", result.output)
    assert steps == [str(n) for n in range(3, 31, 3)]  # every tenth

    small = write_image_folder(tmp_path / "small", per_class={"train": 6}, plain=True)  # 18 images
    quiet = folder_train(tmp_path, small)
    assert quiet.exit_code == 0, quiet.output
    assert not re.search(r"decoding \d+ of", quiet.output)


def test_a_plain_folder_too_small_to_hold_out_a_test_split_is_one_line(tmp_path):
    root = write_image_folder(tmp_path / "pics", per_class={"train": 2}, plain=True)  # 20% of 2 is 0
    result = folder_train(tmp_path, root)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"error: folder data set {root} has too few images to hold out 20%")
    assert "put them in" in result.stderr


@pytest.mark.parametrize("only", ["train", "test"])
def test_a_folder_with_only_one_split_folder_is_still_refused(tmp_path, only):
    root = write_image_folder(tmp_path / "pics")
    missing = "test" if only == "train" else "train"
    for file in (root / missing).rglob("*.png"):
        file.unlink()
    for folder in sorted((root / missing).rglob("*"), reverse=True):
        folder.rmdir()
    (root / missing).rmdir()
    result = folder_train(tmp_path, root)
    assert result.exit_code == 1 and f"folder data set {root} has no {missing}/ folder" in result.stderr
