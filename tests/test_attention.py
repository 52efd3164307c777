"""Attention extraction, rollout, pictures and `vitcli attention`, for in-house ViT checkpoints."""

import json
import math

import pytest
import timm
import torch
from cli_helpers import run, train
from fakedata import write_mnist
from PIL import Image
from timm_helpers import finetune

from vitcli.cli.common import spread_values
from vitcli.data.datasets import DatasetInfo
from vitcli.errors import CheckpointError, ConfigError
from vitcli.lab.attention_figure import (
    CELL_PX,
    COLORBAR_PX,
    TITLE_PX,
    figure_size_px,
    grid_shape,
    picture_paths,
    save_figure,
)
from vitcli.lab.explain import ImageAttention
from vitcli.models import CNN
from vitcli.models.attention_maps import cls_attention, extract, fuse_heads, rollout, rollout_map
from vitcli.models.build import build_module
from vitcli.settings.specs import ViTSpec

MNIST = DatasetInfo("mnist", 1, 28, 28, [str(i) for i in range(10)], "digits")


def vit(heads=2, depth=3, patch_size=7, seed=0):
    torch.manual_seed(seed)
    return build_module(ViTSpec(embed_dim=16, depth=depth, heads=heads, patch_size=patch_size), MNIST).eval()


@pytest.mark.parametrize("heads", [1, 4])
def test_every_attention_row_sums_to_one(heads):
    model = vit(heads=heads)
    _, weights = extract(model, torch.randn(3, 1, 28, 28))
    assert len(weights) == 3
    for w in weights:
        assert w.shape == (3, heads, 17, 17)
        torch.testing.assert_close(w.sum(-1), torch.ones(3, heads, 17))
        assert (w >= 0).all()


@pytest.mark.parametrize("heads", [1, 2])
def test_maps_match_an_explicit_softmax_recomputation(heads):
    """Run the blocks on their fused path and recompute softmax(Q K^T / sqrt(d)) from each block's
    input by hand: the weights `extract` returns must be these."""
    model = vit(heads=heads)
    images = torch.randn(2, 1, 28, 28)
    _, weights = extract(model, images)
    with torch.no_grad():
        x = model.patch_embed(images)
        x = torch.cat([model.cls_token.expand(2, -1, -1), x], dim=1) + model.pos_embed
        for block, got in zip(model.blocks, weights):
            q, k, _ = block.attn.qkv(block.norm1(x)).chunk(3, dim=-1)
            d = 16 // heads
            for h in range(heads):
                qh, kh = q[..., h * d : (h + 1) * d], k[..., h * d : (h + 1) * d]
                expected = torch.softmax(qh @ kh.transpose(1, 2) / math.sqrt(d), dim=-1)
                torch.testing.assert_close(got[:, h], expected, rtol=1e-5, atol=1e-6)
            x, _ = block(x)  # fused path to the next block


def test_cls_maps_are_laid_out_on_the_patch_grid_row_by_row():
    grid = (2, 3)
    n = 1 + 6
    weights = torch.zeros(1, 1, n, n)
    weights[0, 0, 0, 1 + 4] = 1.0  # [CLS] looks only at patch 4: row 1, column 1
    maps = cls_attention([weights], grid)
    assert maps.shape == (1, 1, 1, 2, 3)
    expected = torch.zeros(2, 3)
    expected[1, 1] = 1
    torch.testing.assert_close(maps[0, 0, 0], expected)


def test_rollout_of_identity_attention_keeps_every_token_to_itself():
    n, grid = 1 + 4, (2, 2)
    identity = torch.eye(n).expand(2, 3, n, n)
    rolled = rollout([identity, identity])
    torch.testing.assert_close(rolled, torch.eye(n).expand(2, n, n))
    # [CLS] never mixes with the patches: its map over them is uniformly zero.
    torch.testing.assert_close(rollout_map([identity], grid), torch.zeros(2, 2, 2))


def test_rollout_of_uniform_attention_is_uniform_over_the_patches():
    n, grid = 1 + 9, (3, 3)
    uniform = torch.full((1, 2, n, n), 1 / n)
    maps = rollout_map([uniform, uniform, uniform], grid)
    assert torch.allclose(maps, maps[0, 0, 0].expand_as(maps))
    rolled = rollout([uniform, uniform, uniform])
    torch.testing.assert_close(rolled.sum(-1), torch.ones(1, n))


def test_rollout_is_the_product_of_residual_corrected_blocks():
    torch.manual_seed(3)
    blocks = [torch.rand(1, 2, 5, 5).softmax(-1) for _ in range(2)]
    a1, a2 = [(b.mean(1)[0] + torch.eye(5)) / 2 for b in blocks]
    a1, a2 = a1 / a1.sum(-1, keepdim=True), a2 / a2.sum(-1, keepdim=True)
    torch.testing.assert_close(rollout(blocks)[0], a2 @ a1)


def test_discard_drops_the_weakest_weights_but_keeps_cls_to_cls():
    weights = torch.tensor([[0.02, 0.49, 0.49], [0.01, 0.01, 0.98], [0.005, 0.005, 0.99]]).expand(1, 1, 3, 3)
    # 60% of 9 weights: the five smallest go, except [CLS] -> [CLS] (0.02), which is one of them.
    kept = torch.tensor([[0.02, 0.49, 0.49], [0.0, 0.0, 0.98], [0.0, 0.0, 0.99]])
    expected = (kept + torch.eye(3)) / 2
    expected = expected / expected.sum(-1, keepdim=True)
    torch.testing.assert_close(rollout([weights], discard_ratio=0.6)[0], expected)
    with pytest.raises(ConfigError, match="--discard"):
        rollout([weights], discard_ratio=1.0)


def test_head_fusions():
    w = torch.tensor([[[[0.2, 0.8]], [[0.6, 0.4]]]])  # (1, 2 heads, 1, 2)
    torch.testing.assert_close(fuse_heads(w, "mean"), torch.tensor([[[0.4, 0.6]]]))
    torch.testing.assert_close(fuse_heads(w, "max"), torch.tensor([[[0.6, 0.8]]]))
    torch.testing.assert_close(fuse_heads(w, "min"), torch.tensor([[[0.2, 0.4]]]))
    with pytest.raises(ConfigError, match="head-fusion"):
        fuse_heads(w, "median")


def test_the_cnn_has_no_attention_to_show():
    with pytest.raises(CheckpointError, match="no attention"):
        extract(CNN(image_size=(28, 28), in_channels=1, num_classes=10), torch.zeros(1, 1, 28, 28))


def test_several_values_after_one_flag_become_repeated_flags():
    args = ["ckpt", "--index", "0", "5", "17", "--out", "x", "--image", "a.png", "b.png", "--seed", "3"]
    assert spread_values(args, ["index", "image"]) == [
        "ckpt",
        "--index",
        "0",
        "--index",
        "5",
        "--index",
        "17",
        "--out",
        "x",
        "--image",
        "a.png",
        "--image",
        "b.png",
        "--seed",
        "3",
    ]
    assert spread_values(["--index", "-1", "2"], ["index"]) == ["--index", "-1", "--index", "2"]


# --- the command -------------------------------------------------------------------------------------


def test_attention_writes_one_picture_per_image_with_the_promised_size(tmp_path, mnist_run):
    out = tmp_path / "pictures"
    result = run("attention", mnist_run, "--index", 0, 5, 17, "--out", out, "--preview")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["test-0.png", "test-17.png", "test-5.png"]
    with Image.open(out / "test-5.png") as png:
        assert png.size == figure_size_px(blocks=2, heads=2)
    assert "test[17]: predicted" in result.output and "▀" in result.output


@pytest.mark.parametrize("blocks, heads", [(1, 1), (3, 4), (2, 6)])
def test_picture_size_follows_the_grid(tmp_path, blocks, heads):
    maps = torch.rand(blocks, heads, 4, 4)
    result = ImageAttention(
        "test[3]",
        torch.zeros(3, 32, 32, dtype=torch.uint8),
        1,
        torch.full((3,), 1 / 3),
        maps,
        torch.rand(4, 4),
    )
    save_figure(result, ["a", "b", "c"], tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as png:
        assert png.size == figure_size_px(blocks, heads)
    rows, cols = grid_shape(blocks, heads)
    assert (rows, cols) == (blocks + 1, max(3, heads + 1))
    width, height = figure_size_px(blocks, heads)
    assert (width - COLORBAR_PX, height - TITLE_PX) == (cols * CELL_PX, rows * CELL_PX)


def test_attention_json_has_raw_maps_for_other_tools(tmp_path, mnist_run):
    result = run("attention", mnist_run, "--random", 2, "--seed", 1, "--json", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["grid_size"] == [4, 4] and len(report["images"]) == 2
    image = report["images"][0]
    maps = torch.tensor(image["cls_attention"])
    assert maps.shape == (2, 2, 4, 4)
    assert (maps.sum(dim=(-1, -2)) < 1 + 1e-5).all()  # [CLS] also attends to itself
    assert torch.tensor(image["rollout"]).shape == (4, 4)
    assert image["prediction"] == max(range(10), key=lambda c: image["probabilities"][c])
    assert image["label"] is not None


def test_attention_on_image_files(tmp_path, mnist_run):
    picture = tmp_path / "digit.png"
    Image.new("RGB", (56, 40), (255, 255, 255)).save(picture)  # RGB and another size: converted
    result = run("attention", mnist_run, "--image", picture, "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p" / "digit.png").is_file()


def test_attention_default_folder_is_the_run_directory(mnist_run):
    assert run("attention", mnist_run).exit_code == 0
    assert (mnist_run / "attention" / "test-0.png").is_file()


@pytest.mark.parametrize(
    "code, args, message",
    [
        (1, ["--index", 10**6], "out of range"),
        (1, ["--index", 0, "--random", 2], "one way"),
        (2, ["--head-fusion", "median"], "--head-fusion"),  # the parser's: exit 2 with its usage message
        (1, ["--discard", 1.5], "--discard"),
        (1, ["--image", "missing.png"], "does not exist"),
        (2, ["--split", "dev"], "--split"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, mnist_run, code, args, message):
    result = run("attention", mnist_run, "--out", tmp_path / "p", *args)
    assert result.exit_code == code
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "p").exists()


def test_cnn_checkpoint_gets_a_clear_message(tmp_path, mnist_dir):
    trained = run(
        "train",
        "--model",
        "cnn",
        "--data-dir",
        mnist_dir,
        "--epochs",
        1,
        "--device",
        "cpu",
        "--subset",
        64,
        "--out",
        tmp_path / "runs",
        "--name",
        "cnn",
    )
    assert trained.exit_code == 0, trained.output
    result = run("attention", tmp_path / "runs" / "cnn")
    assert result.exit_code == 1 and "no attention to show" in result.output


@pytest.mark.skipif(not timm.is_model("test_vit"), reason="this timm has no test_vit; a newer timm has")
def test_a_fine_tuned_timm_vit_works_unchanged(tmp_path):
    """timm's tiny test_vit (6 blocks, 2 heads), fine-tuned from scratch on 28x28 gray images resized
    to 32x32 with 8x8 patches: its maps come out of timm's own attention code."""
    data_dir = write_mnist(tmp_path / "data", train=96, test=16)
    tuned = finetune(tmp_path, data_dir, "--model", "test_vit", "--pretrained", "none", "--name", "timm")
    assert tuned.exit_code == 0, tuned.output
    out = tmp_path / "p"
    result = run("attention", tmp_path / "runs" / "timm", "--index", 0, 3, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["grid_size"] == [4, 4]
    maps = torch.tensor(report["images"][1]["cls_attention"])
    assert maps.shape == (6, 2, 4, 4) and (maps >= 0).all() and (maps.sum(dim=(-1, -2)) <= 1 + 1e-5).all()
    with Image.open(out / "test-3.png") as png:
        assert png.size == figure_size_px(blocks=6, heads=2)


def test_pictures_never_overwrite_an_input_image_or_each_other(tmp_path):
    photos = tmp_path / "photos"
    sources = [
        "test[17]",
        str(photos / "seven.png"),
        str(tmp_path / "other" / "seven.png"),
        str(photos / "a.png"),
    ]
    assert [p.name for p in picture_paths(sources, photos)] == [
        "test-17.png",
        "seven-2.png",
        "seven-3.png",
        "a-2.png",
    ]
    assert [p.name for p in picture_paths(["x/seven.png", "y/seven.png"], tmp_path / "p")] == [
        "seven.png",
        "seven-2.png",
    ]


@pytest.mark.parametrize(
    "variant, grid, query",
    [
        (("--tokenizer", "conv", "--conv-layers", 2), [7, 7], "[CLS]"),  # the grid comes from the stem
        (("--tokenizer", "spt", "--lsa", "--pool", "gap"), [4, 4], "mean"),
        (("--pool", "seq", "--pos-embed", "none"), [4, 4], "mean"),
    ],
)
def test_attention_of_every_variant_works_from_its_checkpoint(tmp_path, mnist_dir, variant, grid, query):
    trained = train(tmp_path, mnist_dir, "--subset", 200, "--embed-dim", 16, "--name", "v", *variant)
    assert trained.exit_code == 0, trained.output
    result = run("attention", tmp_path / "runs" / "v", "--json", "--out", tmp_path / "p")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    image = report["images"][0]
    assert report["grid_size"] == grid and image["query"] == query
    maps = torch.tensor(image["cls_attention"])
    assert maps.shape == (2, 2, *grid)
    rollout = torch.tensor(image["rollout"])
    if query == "mean":  # no prefix token: the mean query's weights, all on the patches, sum to 1
        assert torch.allclose(maps.sum(dim=(-1, -2)), torch.ones(2, 2), atol=1e-5)
        assert torch.isclose(rollout.sum(), torch.tensor(1.0), atol=1e-4)
    assert (tmp_path / "p" / "test-0.png").is_file()
