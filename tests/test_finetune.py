"""`vitcli finetune`: timm ViTs with pretrained weights adapted to small gray images.

The issue's measure uses vit_small_patch16_224 (22M parameters) with random weights in timm's key
names; the other tests use timm's 371k-parameter `test_vit` (dim 64, 6 blocks, 2 heads, 160x160 with
16x16 patches) so that they train in a second or two. Images are 28x28 gray, resized to 32x32 and cut
into 8x8 patches: a 4x4 grid, 17 tokens.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file, save_file
from timm.layers import resample_abs_pos_embed, resample_patch_embed
from timm.models import adapt_input_conv
from typer.testing import CliRunner

from fakedata import write_mnist
from vitcli.checkpoint import load_checkpoint
from vitcli.cli import app
from vitcli.config import Config, finetune_defaults, load_config
from vitcli.data import load_splits
from vitcli.engine import make_optimizer, warmup_cosine
from vitcli.models.specs import TimmSpec
from vitcli.errors import ConfigError, WeightsError
from vitcli.models.pretrained import hub_tag, read_state_dict
from vitcli.report import adaptation_rows
from vitcli.models.timm_vit import build_timm_vit

runner = CliRunner()


def plain_text(output: str) -> str:
    """The words of the parser's boxed error message, without the box."""
    return " ".join(output.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())
# timm added its tiny test models during the 1.0 series, after the 1.0 that pyproject.toml admits.
pytestmark = pytest.mark.skipif(not timm.is_model("test_vit"), reason="this timm has no test_vit; a newer timm has")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def one_thread():
    """These steps are a few milliseconds of work each. With two threads on a 2-core machine shared with
    other jobs, OpenMP's spinning threads made the same finetune run's training take 9.7 s instead of
    0.1 s (measured); one thread keeps the tests quick wherever they run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return write_mnist(tmp_path / "data", train=96, test=16)


def random_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Random values under timm's key names and shapes for `name`, as a published checkpoint has them."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in timm.create_model(name).state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    return {k: torch.randn(shape, generator=generator) for k, shape in shapes.items()}


def finetune(tmp_path, data_dir, *extra):
    args = ["finetune", "--data-dir", data_dir, "--img-size", 32, "--patch-size", 8, "--subset", 32,
            "--val-size", 16, "--epochs", 1, "--batch-size", 16, "--device", "cpu", "--out", tmp_path / "runs", *extra]
    return runner.invoke(app, [str(a) for a in args])


def config(data_dir, **finetune_options) -> Config:
    return load_config(None, {
        "model": {"kind": "timm", "img_size": 32, "patch_size": 8, "name": "test_vit", "pretrained": "none",
                  **finetune_options},
        "data": {"data_dir": str(data_dir), "val_size": 16, "subset": 32},
        "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},
    }, defaults=finetune_defaults())


def build(cfg: Config):
    """What a run builds from `cfg`: the timm spec's Built (module, preprocessing, groups, adaptation)."""
    splits = load_splits(cfg.data)
    return cfg.model.build(splits.info, splits.stats, weight_decay=cfg.train.weight_decay, emit=lambda event: None)


def error_line(output: str) -> str:
    """The one `error:` line of a failed command (progress lines such as "loading mnist" may precede it)."""
    assert "Traceback" not in output, output
    errors = [line for line in output.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and output.strip().endswith(errors[0]), output
    return errors[0]


def checkpoint_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return {k.removeprefix("model."): v for k, v in load_file(str(run_dir / "model.safetensors")).items()}


# --- the measure -----------------------------------------------------------------------------

def test_vit_small_from_a_safetensors_file_keeps_the_adapted_backbone_and_gets_a_new_head(tmp_path, data_dir):
    saved = random_state_dict("vit_small_patch16_224")
    weights = tmp_path / "vit_small.safetensors"
    save_file(saved, str(weights))

    # A linear probe trains only the head, so the checkpoint's backbone is what was loaded. 16x16 images
    # in 8x8 patches (5 tokens) keep the 22M-parameter model quick on a CPU.
    result = finetune(tmp_path, data_dir, "--pretrained", weights, "--freeze", "backbone", "--name", "probe",
                      "--img-size", 16, "--subset", 16)
    assert result.exit_code == 0, result.output
    got = checkpoint_tensors(tmp_path / "runs" / "probe")

    # The adaptation computed independently with timm's functions: 14x14 positions to 2x2, 16x16
    # patches to 8x8, then RGB to one gray channel.
    expected = dict(saved)
    expected["pos_embed"] = resample_abs_pos_embed(saved["pos_embed"], new_size=[2, 2], num_prefix_tokens=1)
    expected["patch_embed.proj.weight"] = adapt_input_conv(1, resample_patch_embed(saved["patch_embed.proj.weight"], [8, 8]))
    # ... and timm's own loading path for the same file.
    timm_path = timm.create_model("vit_small_patch16_224", pretrained=True, img_size=16, patch_size=8, in_chans=1,
                                  num_classes=10, pretrained_cfg_overlay=dict(file=str(weights), custom_load=False))
    backbone = [k for k in saved if not k.startswith("head.")]
    assert set(got) == set(backbone) | {"head.weight", "head.bias"}
    for key in backbone:
        torch.testing.assert_close(got[key], expected[key], msg=key)
        torch.testing.assert_close(got[key], timm_path.state_dict()[key], msg=key)
    assert got["pos_embed"].shape == (1, 5, 384) and got["patch_embed.proj.weight"].shape == (384, 1, 8, 8)
    assert got["head.weight"].shape == (10, 384)
    assert not torch.allclose(got["head.weight"], saved["head.weight"][:10])  # new, not the first 10 of 1000

    for row in ("vit_small.safetensors", "14x14 + 1 -> 2x2 + 1", "16x16 -> 8x8 px", "3 -> 1, input conv summed",
                "1000 -> 10 classes, new", "backbone (linear probe): 3,850 of"):
        assert row in result.output, row


# --- weights files -----------------------------------------------------------------------------------

def test_a_pth_file_nested_under_model_with_ddp_prefixes_reads_as_its_state_dict(tmp_path):
    saved = random_state_dict("test_vit")
    path = tmp_path / "w.pth"
    torch.save({"model": {f"module.{k}": v for k, v in saved.items()}, "epoch": 3}, path)
    got = read_state_dict(path)
    assert got.keys() == saved.keys() and all(torch.equal(got[k], saved[k]) for k in saved)


def test_weights_files_that_cannot_be_used_give_one_line(tmp_path, data_dir):
    pickled = tmp_path / "args.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=1)}, pickled)
    with pytest.raises(WeightsError, match="weights_only=True"):
        read_state_dict(pickled)
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot be read"):
        read_state_dict(tmp_path / "junk.bin")

    other = tmp_path / "other.safetensors"  # test_vit2's weights (another width) for test_vit
    save_file(random_state_dict("test_vit2"), str(other))
    result = finetune(tmp_path, data_dir, "--model", "test_vit", "--pretrained", other)
    assert result.exit_code == 1
    assert "another model's weights" in error_line(result.output)
    assert not (tmp_path / "runs").exists()
    missing = finetune(tmp_path, data_dir, "--model", "test_vit", "--pretrained", tmp_path / "nope.safetensors")
    assert missing.exit_code == 1 and "no such file" in error_line(missing.output)


# --- freezing and layer decay ------------------------------------------------------------------------

def test_frozen_blocks_stay_as_loaded_and_the_rest_trains(tmp_path, data_dir):
    weights = tmp_path / "w.safetensors"
    save_file(random_state_dict("test_vit"), str(weights))
    cfg = config(data_dir, pretrained=str(weights), freeze="2")
    loaded = {k.removeprefix("model."): v.clone() for k, v in build(cfg).module.state_dict().items()}
    result = finetune(tmp_path, data_dir, "--model", "test_vit", "--pretrained", weights, "--freeze", 2,
                      "--lr", 1e-2, "--name", "f")
    assert result.exit_code == 0, result.output
    got = checkpoint_tensors(tmp_path / "runs" / "f")
    frozen = ("patch_embed.", "cls_token", "pos_embed", "blocks.0.", "blocks.1.")
    for key, tensor in got.items():
        if key.startswith("head."):
            continue
        assert torch.equal(tensor, loaded[key]) == key.startswith(frozen), key
    assert "stem and the first 2 blocks" in result.output


def test_layer_decay_gives_each_block_its_own_learning_rate_through_the_schedule(data_dir):
    cfg = config(data_dir, layer_decay=0.5, freeze="1")
    prepared = build(cfg)
    optimizer = make_optimizer(prepared.module, cfg.train, prepared.param_groups)
    vit = prepared.module.model
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    lr = cfg.train.lr
    # timm's layers for a 6-block ViT: 0 stem, 1-6 blocks, 7 head; each 0.5 x the one above.
    assert lr_of[id(vit.head.weight)] == pytest.approx(lr)
    assert lr_of[id(vit.blocks[5].mlp.fc1.weight)] == pytest.approx(lr * 0.5)
    assert lr_of[id(vit.blocks[1].attn.qkv.weight)] == pytest.approx(lr * 0.5 ** 5)
    # Frozen parameters (stem and block 0) are in no group.
    assert id(vit.patch_embed.proj.weight) not in lr_of and id(vit.blocks[0].attn.qkv.weight) not in lr_of
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(2, 10))
    for _ in range(4):
        optimizer.step()
        schedule.step()
    ratios = {round(g["lr"] / max(h["lr"] for h in optimizer.param_groups), 6) for g in optimizer.param_groups}
    assert ratios == {round(0.5 ** k, 6) for k in range(6)}  # head and blocks 1-5


# --- refusing and explaining -------------------------------------------------------------------------

def test_no_adapt_explains_in_one_paragraph_why_28x28_gray_cannot_run(tmp_path, data_dir):
    args = ["finetune", "--no-adapt", "--pretrained", "none", "--data-dir", data_dir, "--out", tmp_path / "runs"]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1
    text = error_line(result.output)
    for phrase in ("224x224 image with 3 channels", "16x16 patches", "196 patches", "197 tokens",
                   "28x28 with 1 channel", "28x28 is not a multiple of 16", "input conv expects 3 channels",
                   "--img-size 28 --patch-size 4 gives a 7x7 grid", "--channels repeat", "new head"):
        assert phrase in text, phrase
    assert not (tmp_path / "runs").exists()


def test_hub_weights_offline_without_a_cache_fail_with_one_line(tmp_path, data_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "vitcli", "finetune", "--pretrained", "imagenet", "--data-dir", str(data_dir),
         "--out", str(tmp_path / "runs"), "--device", "cpu"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 1, done.stderr
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert "vit_small_patch16_224.augreg_in21k_ft_in1k" in line
    assert "--pretrained FILE" in line and "HF_HUB_OFFLINE=1" in line
    assert not (tmp_path / "runs").exists()


def test_hub_weights_come_from_a_filled_cache_offline(tmp_path, data_dir):
    """The users' path: timm resolves --pretrained imagenet through the Hugging Face hub; with the weights
    in the hub's cache and HF_HUB_OFFLINE=1 it needs no network. The cache is filled here by hand, in the
    hub's own layout, with random weights for test_vit's ImageNet tag."""
    tag = hub_tag("test_vit", "imagenet")
    saved = random_state_dict("test_vit")
    repo = tmp_path / "hf" / "hub" / f"models--timm--{tag}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    save_file(saved, str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    done = subprocess.run(
        [sys.executable, "-m", "vitcli", "finetune", "--model", "test_vit", "--pretrained", "imagenet",
         "--freeze", "backbone", "--img-size", "32", "--patch-size", "8", "--data-dir", str(data_dir),
         "--subset", "32", "--val-size", "16", "--epochs", "1", "--batch-size", "16", "--device", "cpu",
         "--out", str(tmp_path / "runs"), "--name", "hub"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    got = checkpoint_tensors(tmp_path / "runs" / "hub")
    for key in ("blocks.0.attn.qkv.weight", "blocks.5.mlp.fc2.bias", "norm.weight", "cls_token"):
        torch.testing.assert_close(got[key], saved[key], msg=key)  # shapes kept: loaded as they were
    assert f"{tag} (timm)" in done.stdout


def test_imagenet_and_dino_map_to_timm_tags_or_say_there_are_none():
    assert hub_tag("vit_small_patch16_224", "imagenet") == "vit_small_patch16_224.augreg_in21k_ft_in1k"
    assert hub_tag("vit_small_patch16_224", "dino") == "vit_small_patch16_224.dino"
    assert hub_tag("deit_small_patch16_224", "imagenet") == "deit_small_patch16_224.fb_in1k"
    with pytest.raises(ConfigError, match="no dino weights for vit_tiny_patch16_224"):
        hub_tag("vit_tiny_patch16_224", "dino")


@pytest.mark.parametrize("options, message", [
    (["--freeze", "some"], "--freeze must be none, backbone or a number"),
    (["--layer-decay", 1.5], "--layer-decay must be in (0, 1]"),
    (["--patch-size", 7], "--img-size 32 is not a multiple of --patch-size 7"),
    (["--model", "resnet18"], "vitcli finetune drives timm's VisionTransformer"),
    (["--model", "vit_nope"], "is not a timm model name"),
    (["--model", "test_vit", "--freeze", 7], "--freeze 7: the model has only 6 blocks"),
])
def test_bad_options_give_one_line(tmp_path, data_dir, options, message):
    result = finetune(tmp_path, data_dir, "--pretrained", "none", *options)
    assert result.exit_code == 1
    assert message in error_line(result.output)
    assert not (tmp_path / "runs").exists()


def test_choices_are_checked_by_the_parser(tmp_path, data_dir):
    result = finetune(tmp_path, data_dir, "--pretrained", "none", "--channels", "rgb")
    assert result.exit_code == 2 and "'rgb' is not one of 'adapt', 'repeat'" in plain_text(result.output)
    assert not (tmp_path / "runs").exists()


# --- checkpoints and the in-house ViT's interface ----------------------------------------------------

def test_a_finetune_run_evaluates_and_repeats_from_its_own_files(tmp_path, data_dir):
    result = finetune(tmp_path, data_dir, "--model", "test_vit", "--pretrained", "none", "--lr", 1e-3, "--name", "r")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "r"
    evaluated = runner.invoke(app, ["eval", str(run_dir), "--data-dir", str(data_dir), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    checkpoint = load_checkpoint(run_dir)
    assert json.loads(evaluated.output)["accuracy"] == pytest.approx(checkpoint.metrics["test_accuracy"])
    assert checkpoint.adaptation.source == "none" and checkpoint.adaptation.grid == (4, 4)
    assert checkpoint.adaptation.normalisation == "data"  # random weights: the data's own statistics
    assert checkpoint.preprocessing.mean == pytest.approx([0.1307], abs=1e-3)
    assert checkpoint.preprocessing.size == (32, 32) and checkpoint.preprocessing.channels is None
    toml = (run_dir / "config.toml").read_text()
    assert "[finetune]" not in toml and "img_size = 32" in toml and '[model]\nkind = "timm"\nname = "test_vit"' in toml
    repeated = runner.invoke(app, ["finetune", "--config", str(run_dir / "config.toml"), "--print-config"])
    assert repeated.exit_code == 0 and repeated.output == toml


def test_a_timm_spec_holds_only_its_own_fields():
    assert "embed_dim" not in finetune_defaults().to_toml() and "pretrained" not in Config().to_toml()
    cfg = load_config(None, {"model": {"kind": "timm", "heads": 4}})
    assert cfg.model == TimmSpec() and cfg.notes == [
        "--heads is a setting of vit models; a timm model has none, so it is ignored"]


def test_help_shows_finetunes_own_defaults_and_the_options_shared_with_train():
    # The shared options (cli/options.py) quote Config()'s defaults: finetune's must be the same but lr's.
    train, tuned = Config(), finetune_defaults()
    assert (tuned.data, tuned.run) == (train.data, train.run)
    assert tuned.train == dataclasses.replace(train.train, lr=tuned.train.lr) and tuned.train.lr != train.train.lr
    result = runner.invoke(app, ["finetune", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    for text in ("--dataset", "--val-size", "--no-augment", "--weight-decay", "--no-compile", "--print-config",
                 "[default: 0.0001]", "[default: 128]", "[default: runs]", "[default: timm-DATASET-DATE-TIME]"):
        assert text in result.output, text
    assert "[default: 0.01]" not in result.output


def test_return_attention_gives_the_in_house_vit_interface(data_dir):
    info = load_splits(config(data_dir).data).info
    model = build_timm_vit(config(data_dir).model, info).eval()
    assert (model.grid_size, model.num_prefix_tokens, model.num_tokens) == ((4, 4), 1, 17)
    x = torch.randn(3, 1, 32, 32)  # as its preprocessing resizes the 28x28 images
    with torch.no_grad():
        logits, attentions = model(x, return_attention=True)
        plain = model(x)
    torch.testing.assert_close(logits, plain, rtol=1e-4, atol=1e-5)
    assert len(attentions) == 6 and all(a.shape == (3, 2, 17, 17) for a in attentions)
    for a in attentions:
        torch.testing.assert_close(a.sum(-1), torch.ones(3, 2, 17))
    attn = model.model.blocks[0].attn
    assert attn.fused_attn == timm.layers.use_fused_attn() and not attn.attn_drop._forward_hooks


def test_channels_repeat_keeps_the_rgb_input_conv_and_copies_gray(tmp_path, data_dir):
    saved = random_state_dict("test_vit")
    weights = tmp_path / "w.safetensors"
    save_file(saved, str(weights))
    cfg = config(data_dir, pretrained=str(weights), channels="repeat")
    prepared = build(cfg)
    conv = prepared.module.model.patch_embed.proj.weight
    torch.testing.assert_close(conv, resample_patch_embed(saved["patch_embed.proj.weight"], [8, 8]))
    inputs = prepared.preprocessing.on("cpu")(torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8))
    assert inputs.shape == (2, 3, 32, 32) and torch.equal(inputs[:, 0], inputs[:, 2])  # gray copied to RGB
    assert prepared.module(inputs).shape == (2, 10)
    assert prepared.adaptation.gray_repeated and (prepared.adaptation.channels_before, prepared.adaptation.channels) == (3, 3)
    assert len(prepared.preprocessing.mean) == 1  # one gray channel normalised before it is repeated
    rows = dict(adaptation_rows(prepared.adaptation, prepared.preprocessing, "mnist"))
    assert rows["channels"].startswith("1 -> 3, gray repeated to RGB")
