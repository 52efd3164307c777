"""Too few tokens (`models/token_grid.py`): `vitcli train`, `finetune` and a sweep say in one warning line,
before the first epoch, that a model makes fewer than 4 tokens of an image and which value of which option
gives more; `vitcli attention` and `vitcli inspect` refuse a model of 1 token in one line, writing nothing.
On 8x8 gray image folders (the issue's case: --preset mnist-cct made 1 token of each image)."""

import json

import pytest
from cli_helpers import run
from fakedata import write_image_folder, write_mnist
from run_helpers import single_thread

SMALL = {"train": 12, "test": 4}  # a class: 36 training images in all, 12 test


@pytest.fixture(autouse=True)
def one_thread():
    yield from single_thread()


def folder(tmp_path, size=(8, 8)):
    return write_image_folder(tmp_path / f"gray{size[0]}x{size[1]}", size=size, mode="L", per_class=SMALL)


def train(tmp_path, data, name, *extra):
    """One epoch of a small model on the folder `data` into tmp_path/runs/NAME."""
    settings = ["--epochs", 1, "--batch-size", 16, "--device", "cpu", "--out", tmp_path / "runs"]
    return run("train", "--dataset", f"folder:{data}", *settings, "--name", name, *extra)


def warnings(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("warning:")]


def trained(result, run_dir):
    assert result.exit_code == 0, result.output
    assert (run_dir / "model.safetensors").is_file()  # a warning, not an error: the run is made
    return run_dir


def assert_warned_once_before_training(output: str, words: str) -> None:
    [line] = warnings(output)
    assert words in line, line
    lines = output.splitlines()
    first_epoch = next(i for i, text in enumerate(lines) if text.startswith("epoch 1/"))
    assert lines.index(line) < first_epoch


def test_the_issues_preset_on_8x8_images_warns_of_its_one_token(tmp_path):
    data = folder(tmp_path)
    result = train(tmp_path, data, "cct", "--preset", "mnist-cct", "--depth", 1)
    trained(result, tmp_path / "runs" / "cct")
    assert_warned_once_before_training(
        result.output,
        "warning: 8x8 images become 1 token (a 1x1 grid) with --tokenizer conv --conv-layers 3, so attention "
        "has nothing to relate; use --conv-layers 1 (16 tokens) or 2 (4 tokens)",
    )


@pytest.mark.parametrize(
    "size, options, words",
    [
        (
            (8, 8),
            ["--patch-size", 8],
            "8x8 images become 1 token (a 1x1 grid) with --patch-size 8, so attention has nothing to relate; "
            "use --patch-size 2 (16 tokens) or 4 (4 tokens)",
        ),
        (
            (8, 8),
            ["--tokenizer", "spt", "--patch-size", 8],
            "1 token (a 1x1 grid) with --tokenizer spt --patch-size 8, so attention has nothing to relate; "
            "use --patch-size 2 (16 tokens) or 4 (4 tokens)",
        ),
        (
            (8, 16),
            ["--patch-size", 8],
            "8x16 images become 2 tokens (a 1x2 grid) with --patch-size 8, so attention has little to "
            "relate; use --patch-size 2 (32 tokens) or 4 (8 tokens)",
        ),
    ],
)
def test_patches_too_large_for_the_images_are_warned_of(tmp_path, size, options, words):
    result = train(tmp_path, folder(tmp_path, size), "p", "--embed-dim", 8, "--depth", 1, *options)
    trained(result, tmp_path / "runs" / "p")
    assert_warned_once_before_training(result.output, words)


@pytest.mark.parametrize(
    "options",
    [
        ["--patch-size", 4],  # a 2x2 grid: 4 tokens, the fewest without a warning
        ["--tokenizer", "conv", "--conv-layers", 2],
        ["--model", "cnn"],  # no tokens at all
    ],
)
def test_four_tokens_or_more_train_without_a_warning(tmp_path, options):
    result = train(tmp_path, folder(tmp_path), "ok", "--embed-dim", 8, "--depth", 1, *options)
    trained(result, tmp_path / "runs" / "ok")
    assert warnings(result.output) == [] and "warning" not in result.output


def test_a_cnn_is_still_refused_for_having_no_attention_not_for_its_tokens(tmp_path):
    run_dir = trained(train(tmp_path, folder(tmp_path), "c", "--model", "cnn"), tmp_path / "runs" / "c")
    for command in ("attention", "inspect"):
        result = run(command, run_dir)
        assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
        assert "token" not in result.stderr and "CNN" in result.stderr


def test_finetune_warns_of_a_timm_grid_of_one_token(tmp_path):
    data = write_mnist(tmp_path / "data", train=48, test=16)
    settings = ["--subset", 32, "--val-size", 16, "--epochs", 1, "--batch-size", 16, "--device", "cpu"]
    result = run(
        "finetune",
        "--data-dir",
        data,
        "--model",
        "test_vit",
        "--pretrained",
        "none",
        "--img-size",
        16,
        "--patch-size",
        16,
        *settings,
        "--out",
        tmp_path / "runs",
        "--name",
        "t",
    )
    run_dir = trained(result, tmp_path / "runs" / "t")
    assert_warned_once_before_training(
        result.output,
        "28x28 images become 1 token (a 1x1 grid) with --img-size 16 --patch-size 16, so attention has "
        "nothing to relate; use --patch-size 4 (16 tokens) or 8 (4 tokens)",
    )
    refused = run("attention", run_dir, "--out", tmp_path / "p")  # timm's wrapper is refused alike
    assert refused.exit_code == 1 and "turns each image into 1 token" in refused.stderr
    assert "--patch-size 4 (16 tokens)" in refused.stderr and not (tmp_path / "p").exists()


def test_a_sweep_warns_for_the_run_of_one_token_only(tmp_path):
    data = folder(tmp_path)
    result = run(
        "sweep",
        "--dataset",
        f"folder:{data}",
        "--patch-size",
        4,
        8,
        "--embed-dim",
        8,
        "--depth",
        1,
        "--epochs",
        1,
        "--batch-size",
        16,
        "--device",
        "cpu",
        "--out",
        tmp_path / "sweep",
    )
    assert result.exit_code == 0, result.output
    [line] = warnings(result.output)
    assert "with --patch-size 8," in line


@pytest.fixture
def one_token(tmp_path):
    """A ViT of 2 blocks whose conv tokenizer makes 1 token of an 8x8 image: runs/one."""
    result = train(tmp_path, folder(tmp_path), "one", "--tokenizer", "conv", "--conv-layers", 3, "--depth", 2)
    return trained(result, tmp_path / "runs" / "one")


REFUSAL = (
    "'s model turns each image into 1 token, so its attention has nothing to show (every map would be "
    "uniform); train it again with --conv-layers 1 (16 tokens) or 2 (4 tokens) to see attention"
)


def assert_refused(result, run_dir):
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.strip().splitlines() == [f"error: {run_dir}{REFUSAL}"]
    assert result.stdout == ""


@pytest.mark.parametrize("extra", [[], ["--json"], ["--random", 3]])
def test_attention_refuses_a_model_of_one_token_and_writes_nothing(tmp_path, one_token, extra):
    assert_refused(run("attention", one_token, *extra), one_token)
    assert not (one_token / "attention").exists()
    assert_refused(run("attention", one_token, "--out", tmp_path / "p", *extra), one_token)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("extra", [[], ["--figure", "distance"], ["--figure", "positions"], ["--evolution"]])
def test_inspect_refuses_a_model_of_one_token_and_writes_nothing(tmp_path, one_token, extra):
    assert_refused(run("inspect", one_token, *extra), one_token)
    assert not (one_token / "inspect").exists()


def test_inspect_still_draws_what_reads_no_attention(tmp_path, one_token):
    filters = run("inspect", one_token, "--figure", "filters", "--json")
    assert filters.exit_code == 0, filters.output
    assert json.loads(filters.stdout)["filters"]["source"] == "first convolution 3x3"
    against = run("inspect", one_token, "--against", one_token, "--json")  # predictions, not attention
    assert against.exit_code == 0, against.output
    assert json.loads(against.stdout)["against"]["images"] == 12


def test_attention_and_inspect_draw_a_model_of_two_tokens(tmp_path):
    data = folder(tmp_path, (8, 16))
    run_dir = trained(
        train(tmp_path, data, "two", "--patch-size", 8, "--depth", 1), tmp_path / "runs" / "two"
    )
    drawn = run("attention", run_dir, "--json", "--out", tmp_path / "p")
    assert drawn.exit_code == 0, drawn.output
    report = json.loads(drawn.stdout)
    assert report["grid_size"] == [1, 2] and (tmp_path / "p" / "test-0.png").is_file()
    assert len(report["images"][0]["rollout"][0]) == 2
    inspected = run("inspect", run_dir, "--figure", "distance", "--images", 6, "--out", tmp_path / "i")
    assert inspected.exit_code == 0, inspected.output
    assert (tmp_path / "i" / "distance.png").is_file()
