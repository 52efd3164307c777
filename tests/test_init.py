"""`vitcli train --init RUN` (training/transfer.py): a run starts from another run's weights, its head new
when the classes differ, its positions resampled when the token grid does, its first layer adapted when
the channels do, each change in the run table and the checkpoint; the loaded tensors are really the ones
the model starts from (compared before the first step); --freeze and --layer-decay as in finetune. On fake
MNIST IDX files (28x28x1) and CIFAR-10 pickles (32x32x3)."""

import json

import pytest
import torch
from cli_helpers import run
from fakedata import write_cifar10, write_mnist
from run_helpers import single_thread
from safetensors import safe_open
from timm.layers import resample_abs_pos_embed
from timm.models import adapt_input_conv

from vitcli.data.datasets import load_splits
from vitcli.events import Status
from vitcli.models.build import build_model
from vitcli.settings.config import load_config
from vitcli.training.checkpoint import load_checkpoint
from vitcli.training.transfer import apply_init, model_of

VIT = ("--embed-dim", 16, "--heads", 2, "--depth", 2, "--patch-size", 4)


@pytest.fixture(autouse=True)
def one_thread():
    yield from single_thread()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_mnist(root, train=300, test=100)
    write_cifar10(root, per_batch=60, test=60)
    return root


@pytest.fixture(scope="module")
def sources(data, tmp_path_factory):
    """A ViT and a CNN trained one epoch on all 10 CIFAR-10 classes, and a ViT on MNIST."""
    out = tmp_path_factory.mktemp("runs")
    common = ("--data-dir", data, "--epochs", 1, "--batch-size", 32, "--device", "cpu", "--out", out)
    for name, extra in (
        ("cifar-vit", ("--dataset", "cifar10", *VIT)),
        ("cifar-cnn", ("--dataset", "cifar10", "--model", "cnn")),
        ("mnist-vit", VIT),
    ):
        result = run("train", *common, "--name", name, *extra)
        assert result.exit_code == 0, result.output
    return out


def started(data, init, dataset="mnist", classes=None, **model):
    """The module a run with --init would train, before its first step, and its transfer record."""
    spec_values = {**json.loads(json.dumps(model_of(str(init)).to_dict())), **model}
    config = load_config(None, {"model": spec_values, "data": {"dataset": dataset, "data_dir": str(data)}})
    config = config.merged({"data": {"classes": classes}})
    splits = load_splits(config.data)
    lines = []
    built = build_model(config.model, splits.info, splits.stats, weight_decay=0.05, emit=lines.append)
    built = apply_init(built, splits.info, 0.05, lines.append)
    return built, [e.message for e in lines if isinstance(e, Status)]


def tensors_of(run_dir):
    with safe_open(run_dir / "model.safetensors", "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is no dict


def test_other_classes_get_a_new_head_and_everything_else_as_trained(data, sources):
    source = tensors_of(sources / "mnist-vit")
    built, lines = started(data, sources / "mnist-vit", classes="5,6,7")
    mine = built.module.state_dict()
    assert mine["head.weight"].shape == (3, 16)  # a new head, not a slice of the old one
    for key, value in mine.items():
        if not key.startswith("head."):
            assert torch.equal(value, source[key]), key
    t = built.transfer
    assert (t.loaded, t.tensors) == (len(mine) - 2, len(mine))
    assert t.changes[0].startswith("new head for 3 classes (it had 10")
    assert any("starting from" in line for line in lines)


def test_the_same_classes_keep_the_head(data, sources):
    source = tensors_of(sources / "mnist-vit")
    built, _ = started(data, sources / "mnist-vit")
    assert all(torch.equal(v, source[k]) for k, v in built.module.state_dict().items())
    assert built.transfer.changes == ()


def test_another_grid_and_channels_resample_the_positions_and_adapt_the_first_layer(data, sources):
    """CIFAR-10 (32x32x3, an 8x8 grid of 4x4 patches) into MNIST (28x28x1, a 7x7 grid)."""
    source = tensors_of(sources / "cifar-vit")
    built, _ = started(data, sources / "cifar-vit", dataset="mnist")
    mine = built.module.state_dict()
    positions = source["pos_embed"]
    expected = resample_abs_pos_embed(positions, new_size=[7, 7], old_size=[8, 8], num_prefix_tokens=1)
    assert mine["pos_embed"].shape == (1, 50, 16)
    assert torch.equal(mine["pos_embed"], expected)
    first = "patch_embed.proj.weight"
    assert torch.equal(mine[first], adapt_input_conv(1, source[first]))
    for key in ("blocks.0.attn.qkv.weight", "blocks.1.mlp.fc2.bias", "norm.weight", "cls_token"):
        assert torch.equal(mine[key], source[key]), key
    # 10 classes each, but other ones: a head that knew airplanes knows nothing of digits
    assert not torch.equal(mine["head.weight"], source["head.weight"])
    words = " ".join(built.transfer.changes)
    assert "new head for 10 classes" in words
    assert "positions resampled from a 8x8 to a 7x7 grid" in words
    assert "first layer adapted from 3 channels to 1" in words


def test_a_cnn_adapts_its_first_conv_and_renews_its_first_fully_connected_layer(data, sources):
    source = tensors_of(sources / "cifar-cnn")
    built, _ = started(data, sources / "cifar-cnn", dataset="mnist")
    mine = built.module.state_dict()
    assert torch.equal(mine["features.0.0.weight"], adapt_input_conv(1, source["features.0.0.weight"]))
    assert mine["classifier.1.weight"].shape == (1024, 256 * 3 * 3)  # 28 px: 3x3 after three poolings
    assert torch.equal(mine["features.2.2.weight"], source["features.2.2.weight"])
    assert torch.equal(mine["classifier.4.weight"], source["classifier.4.weight"])
    assert any("first fully connected layer new" in change for change in built.transfer.changes)


def test_a_run_from_init_takes_the_checkpoints_model_and_says_what_it_changed(data, sources, tmp_path):
    out = tmp_path / "runs"
    args = ("--data-dir", data, "--epochs", 1, "--batch-size", 32, "--device", "cpu", "--out", out)
    result = run("train", *args, "--name", "tuned", "--init", sources / "cifar-vit", "--classes", "0,1,2")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "new head for 3 classes" in text and "positions resampled" in text and "│ loaded" in result.output
    config = (out / "tuned" / "config.toml").read_text()
    assert "embed_dim = 16" in config and "patch_size = 4" in config  # the checkpoint's, not the defaults
    with safe_open(out / "tuned" / "model.safetensors", "pt") as f:
        record = json.loads(f.metadata()["transfer"])
    assert record["source"] == str(sources / "cifar-vit") and record["loaded"] > 0
    assert load_checkpoint(out / "tuned").info.classes == ["0 - zero", "1 - one", "2 - two"]
    # Resuming takes every weight from the run's own state, and still knows what trains.
    more = run("train", "--resume", out / "tuned", "--epochs", 2)
    assert more.exit_code == 0, more.output


def test_freeze_backbone_trains_the_head_alone(data, sources, tmp_path):
    out = tmp_path / "runs"
    args = ("--data-dir", data, "--epochs", 1, "--batch-size", 32, "--device", "cpu", "--out", out)
    result = run("train", *args, "--name", "probe", "--init", sources / "mnist-vit", "--freeze", "backbone")
    assert result.exit_code == 0, result.output
    before, after = tensors_of(sources / "mnist-vit"), tensors_of(out / "probe")
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight", "head.bias"}
    assert "all but the head: 170 of" in " ".join(result.output.split())


def test_layer_decay_scales_each_block_below_the_head(data, sources):
    built, _ = started(data, sources / "mnist-vit", layer_decay=0.5)
    scales = sorted({g["lr_scale"] for g in built.param_groups})
    assert scales == [0.125, 0.25, 0.5, 1.0]  # stem, block 0, block 1, the top (norm and head)
    assert built.transfer.lowest_lr_scale == 0.125


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--init", "no-such-run"), "--init: checkpoint no-such-run does not exist"),
        (("--freeze", "backbone"), "--freeze acts on loaded weights"),
        (("--layer-decay", 0.7), "--layer-decay acts on loaded weights"),
        (("--init", "SOURCE", "--embed-dim", 32), "this model's is"),
        (("--init", "SOURCE", "--model", "cnn"), "holds a vit and this run builds a cnn"),
        (("--init", "SOURCE", "--freeze", 5), "--freeze 5: the model has only 2 blocks"),
    ],
)
def test_bad_inits_are_one_line(data, sources, tmp_path, extra, words):
    extra = [sources / "mnist-vit" if value == "SOURCE" else value for value in extra]
    out = tmp_path / "runs"
    result = run("train", "--data-dir", data, "--epochs", 1, "--device", "cpu", "--out", out, *extra)
    assert result.exit_code == 1, result.output
    assert words in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_a_shipped_model_is_an_init_by_name(data, tmp_path):
    """The study's animal ViT (vitcli models) starts a vehicle classifier: its settings, a new head."""
    out = tmp_path / "runs"
    args = ("--data-dir", data, "--dataset", "cifar10", "--epochs", 1, "--device", "cpu", "--out", out)
    result = run("train", *args, "--name", "cars", "--init", "cifar10-animals-vit", "--classes", "1,9")
    assert result.exit_code == 0, result.output
    assert "new head for 2 classes (it had 6: bird, cat" in " ".join(result.output.split())
    saved = (out / "cars" / "config.toml").read_text()
    assert 'init = "cifar10-animals-vit"' in saved and "embed_dim = 64" in saved and "depth = 4" in saved
