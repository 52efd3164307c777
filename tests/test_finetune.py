"""`vitcli finetune`: timm ViTs built for small gray images (models/finetune.py), frozen blocks, layer
decay, the options, and the run's checkpoint. Reading and adapting pretrained weights is tested in
test_pretrained.py.

These tests use timm's 371k-parameter `test_vit` (dim 64, 6 blocks, 2 heads, 160x160 with 16x16 patches)
so that they train in a second or two. Images are 28x28 gray, resized to 32x32 and cut into 8x8 patches:
a 4x4 grid, 17 tokens.
"""

import dataclasses
import json

import pytest
import timm
import timm_helpers
import torch
from cli_helpers import plain_text
from safetensors.torch import save_file
from timm.layers import resample_patch_embed
from timm_helpers import checkpoint_tensors, error_line, finetune, random_state_dict, runner

from vitcli.cli import app
from vitcli.cli.tables import adaptation_rows
from vitcli.data import load_splits
from vitcli.models.build import build_model
from vitcli.models.timm_vit import build_timm_vit
from vitcli.settings.config import Config, finetune_defaults, load_config
from vitcli.settings.specs import TimmSpec
from vitcli.training.checkpoint import load_checkpoint
from vitcli.training.optim import make_optimizer, warmup_cosine

# timm added its tiny test models during the 1.0 series, after the 1.0 that pyproject.toml admits.
pytestmark = pytest.mark.skipif(
    not timm.is_model("test_vit"), reason="this timm has no test_vit; a newer timm has"
)
# The shared fixtures, made this module's: data_dir, and one_thread (autouse) for every test here.
data_dir = timm_helpers.data_dir
one_thread = timm_helpers.one_thread


def config(data_dir, **finetune_options) -> Config:
    return load_config(
        None,
        {
            "model": {
                "kind": "timm",
                "img_size": 32,
                "patch_size": 8,
                "name": "test_vit",
                "pretrained": "none",
                **finetune_options,
            },
            "data": {"data_dir": str(data_dir), "val_size": 16, "subset": 32},
            "train": {"epochs": 1, "batch_size": 16, "device": "cpu"},
        },
        defaults=finetune_defaults(),
    )


def build(cfg: Config):
    """What a run builds from `cfg`: the timm spec's Built (module, preprocessing, groups, adaptation)."""
    splits = load_splits(cfg.data)
    return build_model(cfg.model,
        splits.info, splits.stats, weight_decay=cfg.train.weight_decay, emit=lambda event: None
    )


# --- freezing and layer decay ------------------------------------------------------------------------


def test_frozen_blocks_stay_as_loaded_and_the_rest_trains(tmp_path, data_dir):
    weights = tmp_path / "w.safetensors"
    save_file(random_state_dict("test_vit"), str(weights))
    cfg = config(data_dir, pretrained=str(weights), freeze="2")
    loaded = {k.removeprefix("model."): v.clone() for k, v in build(cfg).module.state_dict().items()}
    result = finetune(
        tmp_path,
        data_dir,
        "--model",
        "test_vit",
        "--pretrained",
        weights,
        "--freeze",
        2,
        "--lr",
        1e-2,
        "--name",
        "f",
    )
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
    assert lr_of[id(vit.blocks[1].attn.qkv.weight)] == pytest.approx(lr * 0.5**5)
    # Frozen parameters (stem and block 0) are in no group.
    assert id(vit.patch_embed.proj.weight) not in lr_of and id(vit.blocks[0].attn.qkv.weight) not in lr_of
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(2, 10))
    for _ in range(4):
        optimizer.step()
        schedule.step()
    ratios = {
        round(g["lr"] / max(h["lr"] for h in optimizer.param_groups), 6) for g in optimizer.param_groups
    }
    assert ratios == {round(0.5**k, 6) for k in range(6)}  # head and blocks 1-5


# --- bad options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (["--freeze", "some"], "--freeze must be none, backbone or a number"),
        (["--layer-decay", 1.5], "--layer-decay must be in (0, 1]"),
        (["--patch-size", 7], "--img-size 32 is not a multiple of --patch-size 7"),
        (["--model", "resnet18"], "vitcli finetune drives timm's VisionTransformer"),
        (["--model", "vit_nope"], "is not a timm model name"),
        (["--model", "test_vit", "--freeze", 7], "--freeze 7: the model has only 6 blocks"),
    ],
)
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
    result = finetune(
        tmp_path, data_dir, "--model", "test_vit", "--pretrained", "none", "--lr", 1e-3, "--name", "r"
    )
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
    assert (
        "[finetune]" not in toml
        and "img_size = 32" in toml
        and '[model]\nkind = "timm"\nname = "test_vit"' in toml
    )
    repeated = runner.invoke(app, ["finetune", "--config", str(run_dir / "config.toml"), "--print-config"])
    assert repeated.exit_code == 0 and repeated.output == toml


def test_a_timm_spec_holds_only_its_own_fields():
    assert "embed_dim" not in finetune_defaults().to_toml() and "pretrained" not in Config().to_toml()
    cfg = load_config(None, {"model": {"kind": "timm", "heads": 4}})
    assert cfg.model == TimmSpec() and cfg.notes == [
        "--heads is a setting of vit models; a timm model has none, so it is ignored"
    ]


def test_help_shows_finetunes_own_defaults_and_the_options_shared_with_train():
    # The shared options (cli/options.py) quote Config()'s defaults: finetune's must be the same but lr's.
    train, tuned = Config(), finetune_defaults()
    assert (tuned.data, tuned.run) == (train.data, train.run)
    assert (
        tuned.train == dataclasses.replace(train.train, lr=tuned.train.lr)
        and tuned.train.lr != train.train.lr
    )
    result = runner.invoke(app, ["finetune", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0
    for text in (
        "--dataset",
        "--val-size",
        "--no-augment",
        "--weight-decay",
        "--no-compile",
        "--print-config",
        "[default: 0.0001]",
        "[default: 128; on a training set under 5,120 images, fewer",
        "[default: runs]",
        "[default: timm-DATASET-DATE-TIME]",
    ):
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
    assert prepared.adaptation.gray_repeated and (
        prepared.adaptation.channels_before,
        prepared.adaptation.channels,
    ) == (3, 3)
    assert len(prepared.preprocessing.mean) == 1  # one gray channel normalised before it is repeated
    rows = dict(adaptation_rows(prepared.adaptation, prepared.preprocessing, "mnist"))
    assert rows["channels"].startswith("1 -> 3, gray repeated to RGB")
