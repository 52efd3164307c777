"""Pretrained weights for `vitcli finetune` (models/pretrained.py): weights files read and adapted to
the model, timm's hub tags and its cache, and why a model cannot run unadapted.

The issue's measure uses vit_small_patch16_224 (22M parameters) with random weights in timm's key names;
the other tests use timm's 371k-parameter `test_vit` (dim 64, 6 blocks, 2 heads, 160x160 with 16x16
patches). Images are 28x28 gray.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import timm_helpers
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed, resample_patch_embed
from timm.models import adapt_input_conv
from timm_helpers import checkpoint_tensors, error_line, finetune, random_state_dict, runner

from vitcli.cli import app
from vitcli.errors import ConfigError, WeightsError
from vitcli.models.pretrained import hub_tag, read_state_dict

# timm added its tiny test models during the 1.0 series, after the 1.0 that pyproject.toml admits.
pytestmark = pytest.mark.skipif(
    not timm.is_model("test_vit"), reason="this timm has no test_vit; a newer timm has"
)
# The shared fixtures, made this module's: data_dir, and one_thread (autouse) for every test here.
data_dir = timm_helpers.data_dir
one_thread = timm_helpers.one_thread
REPO = Path(__file__).resolve().parents[1]


# --- the measure -----------------------------------------------------------------------------


def test_vit_small_from_a_safetensors_file_keeps_the_adapted_backbone_and_gets_a_new_head(tmp_path, data_dir):
    saved = random_state_dict("vit_small_patch16_224")
    weights = tmp_path / "vit_small.safetensors"
    save_file(saved, str(weights))

    # A linear probe trains only the head, so the checkpoint's backbone is what was loaded. 16x16 images
    # in 8x8 patches (5 tokens) keep the 22M-parameter model quick on a CPU.
    result = finetune(
        tmp_path,
        data_dir,
        "--pretrained",
        weights,
        "--freeze",
        "backbone",
        "--name",
        "probe",
        "--img-size",
        16,
        "--subset",
        16,
    )
    assert result.exit_code == 0, result.output
    got = checkpoint_tensors(tmp_path / "runs" / "probe")

    # The adaptation computed independently with timm's functions: 14x14 positions to 2x2, 16x16
    # patches to 8x8, then RGB to one gray channel.
    expected = dict(saved)
    expected["pos_embed"] = resample_abs_pos_embed(saved["pos_embed"], new_size=[2, 2], num_prefix_tokens=1)
    expected["patch_embed.proj.weight"] = adapt_input_conv(
        1, resample_patch_embed(saved["patch_embed.proj.weight"], [8, 8])
    )
    # ... and timm's own loading path for the same file.
    timm_path = timm.create_model(
        "vit_small_patch16_224",
        pretrained=True,
        img_size=16,
        patch_size=8,
        in_chans=1,
        num_classes=10,
        pretrained_cfg_overlay={"file": str(weights), "custom_load": False},
    )
    backbone = [k for k in saved if not k.startswith("head.")]
    assert set(got) == set(backbone) | {"head.weight", "head.bias"}
    for key in backbone:
        torch.testing.assert_close(got[key], expected[key], msg=key)
        torch.testing.assert_close(got[key], timm_path.state_dict()[key], msg=key)
    assert got["pos_embed"].shape == (1, 5, 384) and got["patch_embed.proj.weight"].shape == (384, 1, 8, 8)
    assert got["head.weight"].shape == (10, 384)
    assert not torch.allclose(got["head.weight"], saved["head.weight"][:10])  # new, not the first 10 of 1000

    for row in (
        "vit_small.safetensors",
        "14x14 + 1 -> 2x2 + 1",
        "16x16 -> 8x8 px",
        "3 -> 1, input conv summed",
        "1000 -> 10 classes, new",
        "backbone (linear probe): 3,850 of",
    ):
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
    missing = finetune(
        tmp_path, data_dir, "--model", "test_vit", "--pretrained", tmp_path / "nope.safetensors"
    )
    assert missing.exit_code == 1 and "no such file" in error_line(missing.output)


# --- refusing and explaining -------------------------------------------------------------------------


def test_no_adapt_explains_in_one_paragraph_why_28x28_gray_cannot_run(tmp_path, data_dir):
    args = [
        "finetune",
        "--no-adapt",
        "--pretrained",
        "none",
        "--data-dir",
        data_dir,
        "--out",
        tmp_path / "runs",
    ]
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 1
    text = error_line(result.output)
    for phrase in (
        "224x224 image with 3 channels",
        "16x16 patches",
        "196 patches",
        "197 tokens",
        "28x28 with 1 channel",
        "28x28 is not a multiple of 16",
        "input conv expects 3 channels",
        "--img-size 28 --patch-size 4 gives a 7x7 grid",
        "--channels repeat",
        "new head",
    ):
        assert phrase in text, phrase
    assert not (tmp_path / "runs").exists()


def offline_env(tmp_path):
    """`python -m vitcli` with no network: the Hugging Face hub offline, its cache under tmp_path."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")}
    hub = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO / "src")}
    return {**env, **hub, "OMP_NUM_THREADS": "1"}


def test_hub_weights_offline_without_a_cache_fail_with_one_line(tmp_path, data_dir):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitcli",
            "finetune",
            "--pretrained",
            "imagenet",
            "--data-dir",
            str(data_dir),
            "--out",
            str(tmp_path / "runs"),
            "--device",
            "cpu",
        ],
        cwd=REPO,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
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
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vitcli",
            "finetune",
            "--model",
            "test_vit",
            "--pretrained",
            "imagenet",
            "--freeze",
            "backbone",
            "--img-size",
            "32",
            "--patch-size",
            "8",
            "--data-dir",
            str(data_dir),
            "--subset",
            "32",
            "--val-size",
            "16",
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--device",
            "cpu",
            "--out",
            str(tmp_path / "runs"),
            "--name",
            "hub",
        ],
        cwd=REPO,
        env=offline_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
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
