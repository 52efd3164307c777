"""`--conv-layers 0` and the `small` preset: the convolutional tokenizer's stages chosen from the image size
(`models/conv_tokenizer.auto_layers`), written into the run's config and checkpoint as chosen, so that eval,
attention and a resume rebuild the same model; and a preset made for whatever --dataset is given."""

import json
import os
import signal

import pytest
from cli_helpers import run
from fakedata import write_cifar10, write_image_folder, write_mnist
from run_helpers import assert_same_tensors, single_thread, tensors
from safetensors import safe_open

from vitcli.data.datasets import DatasetInfo
from vitcli.errors import ConfigError
from vitcli.events import EpochMetrics
from vitcli.models.build import build_module
from vitcli.models.conv_tokenizer import auto_layers, pooled_size
from vitcli.models.token_grid import lever
from vitcli.runtime.interrupt import RunStopped
from vitcli.settings.config import load_config
from vitcli.settings.presets import load_preset
from vitcli.settings.specs import ViTSpec
from vitcli.training.run import resume_run, train_run

TEN = [str(i) for i in range(10)]
SMALL = {"train": 12, "test": 4}  # a class: 36 training images in all, 12 test


@pytest.fixture(autouse=True)
def one_thread():
    yield from single_thread()


@pytest.mark.parametrize(
    "height, width, stages, grid",
    [
        (8, 8, 1, (4, 4)),
        (12, 12, 1, (6, 6)),  # 2 stages would leave 3x3
        (16, 16, 2, (4, 4)),
        (28, 28, 3, (4, 4)),
        (32, 32, 3, (4, 4)),
        (64, 64, 4, (4, 4)),
        (224, 224, 6, (4, 4)),  # 112, 56, 28, 14, 7, 4: the max-pool rounds 7 up to 4
        (8, 32, 1, (4, 16)),  # the shorter side decides
        (32, 8, 1, (16, 4)),
        (4, 4, 1, (2, 2)),  # under 8x8 no stage keeps 4x4: one all the same
    ],
)
def test_the_stages_are_the_most_that_keep_a_4x4_grid_on_the_shorter_side(height, width, stages, grid):
    assert auto_layers(height, width) == stages
    if min(height, width) >= 8:  # the most: one stage more would leave a side under 4
        assert pooled_size(min(height, width), stages + 1) < 4
    info = DatasetInfo("x", 1, height, width, TEN, "natural")
    model = build_module(ViTSpec(tokenizer="conv", conv_layers=0, embed_dim=8, depth=1), info)
    assert model.grid_size == grid


def test_0_is_allowed_a_negative_or_too_many_stages_are_one_line():
    assert ViTSpec(tokenizer="conv", conv_layers=0).describe() == "vit d32 conv-auto x2"
    for bad in (-1, 9):
        with pytest.raises(ConfigError, match=f"--conv-layers must be 0 .* or 1 to 8 stages, got {bad}"):
            ViTSpec(conv_layers=bad)
    result = run("train", "--tokenizer", "conv", "--conv-layers", -1, "--print-config")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [
        "error: --conv-layers must be 0 (chosen from the image size) or 1 to 8 stages, got -1"
    ]


def test_the_token_guard_reads_a_spec_of_0_as_the_stages_it_gives():
    info = DatasetInfo("x", 1, 8, 8, TEN, "digits")
    found = lever(ViTSpec(tokenizer="conv", conv_layers=0), info)
    assert found.setting == "--tokenizer conv --conv-layers 0 (that is 1)" and found.tokens[1] == 16


def test_the_preset_is_a_conv_vit_for_the_data_set_given():
    preset = load_preset("small")
    assert preset.dataset is None and preset.model == "vit 64/conv0/2"
    config = load_config(None, {"data": {"dataset": "cifar10"}}, preset="small").validate()
    spec = config.model
    assert (spec.tokenizer, spec.conv_layers, spec.pool, spec.pos_embed) == ("conv", 0, "seq", "none")
    assert (spec.embed_dim, spec.depth, spec.heads, spec.mlp_dim) == (64, 2, 2, 128)
    assert config.data.dataset == "cifar10"  # the --dataset given, not a preset's
    assert (config.train.lr, config.train.epochs, config.train.clip_grad) == (1e-2, 30, 1.0)
    listed = {p["name"]: p for p in json.loads(run("presets", "--json").output)}
    assert listed["small"]["dataset"] is None


def stored(run_dir) -> tuple[dict, dict]:
    """The checkpoint's model settings and metrics."""
    meta = safe_open(str(run_dir / "model.safetensors"), "pt").metadata()
    return json.loads(meta["config"])["model"], json.loads(meta["metrics"])


def assert_trained_small(result, run_dir, stages: int, size: str) -> None:
    """A run of `--preset small` that chose `stages` stages: said so, warned of nothing, and recorded the
    stages in config.toml and the checkpoint, which eval and attention rebuild."""
    assert result.exit_code == 0, result.output
    assert f"--conv-layers 0 chose {stages} for {size} images: a 4x4 grid of tokens" in result.output
    assert "warning" not in result.output
    model, metrics = stored(run_dir)
    assert model["conv_layers"] == stages and metrics["tokens"] == 16  # sequence pooling: no [CLS]
    assert f"conv_layers = {stages}\n" in (run_dir / "config.toml").read_text()
    report = run("eval", run_dir, "--split", "val", "--json", "--device", "cpu")
    assert report.exit_code == 0, report.output
    assert json.loads(report.output)["accuracy"] == pytest.approx(metrics["val_accuracy"])
    drawn = run("attention", run_dir, "--json", "--out", run_dir / "maps")
    assert drawn.exit_code == 0, drawn.output
    assert json.loads(drawn.output)["grid_size"] == [4, 4]


def test_the_preset_on_8x8_gray_images_takes_one_stage(tmp_path):
    data = write_image_folder(tmp_path / "gray8", size=(8, 8), mode="L", per_class=SMALL)
    options = ["--epochs", 1, "--device", "cpu", "--out", tmp_path / "runs", "--name", "s"]
    result = run("train", "--preset", "small", "--dataset", f"folder:{data}", *options)
    assert_trained_small(result, tmp_path / "runs" / "s", 1, "8x8")


def test_the_preset_on_cifar10_pickles_takes_three_stages(tmp_path):
    data = write_cifar10(tmp_path / "data", per_batch=20, test=20)
    options = ["--epochs", 1, "--device", "cpu", "--out", tmp_path / "runs", "--name", "c"]
    result = run("train", "--preset", "small", "--dataset", "cifar10", "--data-dir", data, *options)
    assert_trained_small(result, tmp_path / "runs" / "c", 3, "32x32")


def test_conv_layers_0_on_28x28_gives_16_tokens(tmp_path):
    data = write_mnist(tmp_path / "data", train=60, test=20)
    options = ["--epochs", 1, "--device", "cpu", "--out", tmp_path / "runs", "--name", "m"]
    model = ["--tokenizer", "conv", "--conv-layers", 0, "--embed-dim", 16, "--depth", 1]
    result = run("train", "--data-dir", data, *model, "--pool", "gap", *options)
    assert result.exit_code == 0, result.output
    assert "--conv-layers 0 chose 3 for 28x28 images: a 4x4 grid of tokens" in result.output
    spec, metrics = stored(tmp_path / "runs" / "m")
    assert spec["conv_layers"] == 3 and metrics["tokens"] == 16


def test_stages_given_are_kept_and_too_many_are_still_warned_of(tmp_path):
    data = write_image_folder(tmp_path / "gray8", size=(8, 8), mode="L", per_class=SMALL)
    options = ["--epochs", 1, "--device", "cpu", "--out", tmp_path / "runs", "--name", "w"]
    result = run("train", "--preset", "small", "--conv-layers", 3, "--dataset", f"folder:{data}", *options)
    assert result.exit_code == 0, result.output
    [line] = [text for text in result.output.splitlines() if text.startswith("warning:")]
    assert line == (
        "warning: 8x8 images become 1 token (a 1x1 grid) with --tokenizer conv --conv-layers 3, so attention "
        "has nothing to relate; use --conv-layers 1 (16 tokens) or 2 (4 tokens)"
    )
    assert "chose" not in result.output and stored(tmp_path / "runs" / "w")[0]["conv_layers"] == 3


def test_a_run_of_0_stopped_after_its_first_epoch_resumes_to_an_unstopped_runs_weights(tmp_path):
    data = write_image_folder(tmp_path / "gray8", size=(8, 8), mode="L", per_class=SMALL)

    def config(name):
        given = {
            "data": {"dataset": f"folder:{data}"},
            "train": {"epochs": 2, "device": "cpu"},
            "run": {"out": str(tmp_path / "runs"), "name": name},
        }
        return load_config(None, given, preset="small")

    def ctrl_c_after_epoch_1(event):
        if isinstance(event, EpochMetrics) and event.epoch == 1:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would: the run finishes its step and stops

    train_run(config("whole"))
    with pytest.raises(RunStopped):
        train_run(config("stopped"), on_event=ctrl_c_after_epoch_1)
    stopped = tmp_path / "runs" / "stopped"
    assert "conv_layers = 1\n" in (stopped / "config.toml").read_text()  # the resume builds 1 stage
    result = resume_run(stopped)
    assert result.spec.conv_layers == 1 and [m.epoch for m in result.history] == [1, 2]
    whole = tmp_path / "runs" / "whole"
    assert_same_tensors(tensors(stopped / "model.safetensors"), tensors(whole / "model.safetensors"))
