"""--subset keeps the whole run quick: validation and test are capped at max(N, 500) images each, drawn
with fixed seeds to cover every class, and the run table and the checkpoint's metrics say so."""

import json

import torch
from cli_helpers import run, train
from fakedata import write_mnist

from vitcli.data.stratified import SUBSET_EVAL_MIN, draw, eval_cap
from vitcli.training.checkpoint import load_checkpoint

TINY = ("--embed-dim", 8, "--depth", 1, "--name", "quick")


def test_a_subset_run_evaluates_a_capped_test_split_and_says_so(tmp_path):
    data = write_mnist(tmp_path / "data", train=600, test=800)
    result = train(tmp_path, data, "--subset", 100, *TINY)
    assert result.exit_code == 0, result.output
    assert "test on 500 of 800 images (--subset)" in result.output
    assert "val on" not in result.output  # the default validation split (60 images) is under the cap

    model = tmp_path / "runs" / "quick" / "model.safetensors"
    metrics = load_checkpoint(model).metrics
    assert metrics["test_count"] == 500 and metrics["capped"] == {"test": [500, 800]}

    # `vitcli eval` of the checkpoint: the whole test split, as before.
    evaluated = run("eval", model, "--device", "cpu", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["count"] == 800


def test_the_default_validation_split_is_capped_but_an_explicit_val_size_wins(tmp_path):
    data = write_mnist(tmp_path / "data", train=6000, test=200)  # default val: a tenth, 600 images
    capped = train(tmp_path, data, "--subset", 100, *TINY)
    assert capped.exit_code == 0, capped.output
    assert "val on 500 of 600 images (--subset)" in capped.output and "test on" not in capped.output
    metrics = load_checkpoint(tmp_path / "runs" / "quick" / "model.safetensors").metrics
    assert metrics["capped"] == {"val": [500, 600]} and metrics["test_count"] == 200

    explicit = train(tmp_path, data, "--subset", 100, "--val-size", 700, "--overwrite", *TINY)
    assert explicit.exit_code == 0, explicit.output
    assert "(--subset)" not in explicit.output
    assert "capped" not in load_checkpoint(tmp_path / "runs" / "quick" / "model.safetensors").metrics


def test_a_run_without_subset_evaluates_every_image(tmp_path):
    data = write_mnist(tmp_path / "data", train=200, test=600)
    result = train(tmp_path, data, *TINY)
    assert result.exit_code == 0, result.output
    assert "(--subset)" not in result.output
    metrics = load_checkpoint(tmp_path / "runs" / "quick" / "model.safetensors").metrics
    assert metrics["test_count"] == 600 and "capped" not in metrics


def test_the_cap_is_n_with_a_floor():
    assert eval_cap(100) == SUBSET_EVAL_MIN == 500 and eval_cap(2000) == 2000


def test_a_capped_split_covers_every_class_in_proportion():
    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 9 + [3] * 1)  # one class of a single image
    few = draw(labels, 4, seed=3)
    assert sorted(labels[few].tolist()) == [0, 1, 2, 3]  # every class first
    many = labels[draw(labels, 500, seed=3)]
    counts = torch.bincount(many, minlength=4).tolist()
    assert sum(counts) == 500 and counts[3] == 1 and 440 <= counts[0] <= 460 and 40 <= counts[1] <= 50
    assert torch.equal(draw(labels, 500, seed=3), draw(labels, 500, seed=3))  # the same every run
