"""The commands as a user runs them, on small data sets in the real formats."""

import json

import pytest
from cli_helpers import plain_text, run, train
from fakedata import write_image_folder
from safetensors import safe_open


def test_train_writes_a_run_directory(tmp_path, mnist_dir):
    result = train(tmp_path, mnist_dir, "--name", "first", "--epochs", 2)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "first"
    assert {p.name for p in run_dir.iterdir()} == {
        "model.safetensors",
        "last.safetensors",
        "state.safetensors",
        "config.toml",
        "metrics.jsonl",
        "provenance.json",
        "curves.png",
        ".lock",
    }
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2] and 0 <= lines[-1]["val_accuracy"] <= 1
    with safe_open(str(run_dir / "model.safetensors"), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["metrics"])["test_accuracy"] >= 0
    assert json.loads(meta["config"])["train"]["epochs"] == 2
    assert "test" in result.output and "parameters" in result.output and "27,978" in result.output


def test_config_toml_of_a_run_repeats_it(tmp_path, mnist_dir):
    assert train(tmp_path, mnist_dir, "--name", "a", "--heads", 4, "--embed-dim", 16).exit_code == 0
    result = run(
        "train", "--config", tmp_path / "runs" / "a" / "config.toml", "--name", "b", "--print-config"
    )
    assert result.exit_code == 0
    assert (
        "heads = 4" in result.output and "embed_dim = 16" in result.output and 'name = "b"' in result.output
    )


def test_print_config_shows_precedence_and_trains_nothing(tmp_path):
    (tmp_path / "c.toml").write_text("[model]\nembed_dim = 64\ndepth = 3\n")
    result = run(
        "train",
        "--config",
        tmp_path / "c.toml",
        "--depth",
        5,
        "--no-augment",
        "--print-config",
        "--out",
        tmp_path / "r",
    )
    assert result.exit_code == 0
    assert (
        "embed_dim = 64" in result.output
        and "depth = 5" in result.output
        and "augment = false" in result.output
    )
    assert not (tmp_path / "r").exists()


def test_eval_rebuilds_from_metadata_and_prints_tables_or_json(tmp_path, mnist_dir):
    assert train(tmp_path, mnist_dir, "--name", "e").exit_code == 0
    checkpoint = tmp_path / "runs" / "e" / "model.safetensors"
    tables = run("eval", checkpoint, "--data-dir", mnist_dir, "--device", "cpu")
    assert tables.exit_code == 0, tables.output
    assert "per class" in tables.output and "confusion" in tables.output and "9 - nine" in tables.output
    as_json = run("eval", checkpoint, "--data-dir", mnist_dir, "--json", "--split", "val")
    report = json.loads(as_json.output)
    assert report["split"] == "val" and report["count"] == 60 and len(report["confusion"]) == 10
    stored = json.loads(safe_open(str(checkpoint), "pt").metadata()["metrics"])
    assert report["accuracy"] == pytest.approx(stored["val_accuracy"])


def test_cnn_on_cifar10_pickles(tmp_path, cifar10_dir):
    result = train(
        tmp_path, cifar10_dir, "--model", "cnn", "--dataset", "cifar10", "--name", "c", "--subset", 128
    )
    assert result.exit_code == 0, result.output
    assert "5,852,234" in result.output
    evaluated = run("eval", tmp_path / "runs" / "c", "--data-dir", cifar10_dir, "--json")
    assert json.loads(evaluated.output)["dataset"] == "cifar10"


def test_vit_on_an_image_folder(tmp_path):
    folder = write_image_folder(tmp_path / "pets")
    result = run(
        "train",
        "--dataset",
        f"folder:{folder}",
        "--patch-size",
        4,
        "--epochs",
        1,
        "--out",
        tmp_path / "runs",
        "--name",
        "f",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(run("eval", tmp_path / "runs" / "f", "--json").output)
    assert report["classes"] == ["cat", "dog", "fish"] and report["count"] == 18


@pytest.mark.parametrize(
    "args, message",
    [
        (["--heads", "3"], "not divisible by --heads 3"),
        (["--patch-size", "5"], "not divisible by --patch-size 5"),
        (["--dataset", "svhn"], "unknown dataset 'svhn'"),
        (["--epochs", "0"], "--epochs must be a positive"),
        (["--config", "missing.toml"], "config file missing.toml does not exist"),
        (["--device", "cuda:7"], "--device cuda:7"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, mnist_dir, args, message):
    result = train(tmp_path, mnist_dir, *args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet"], "'resnet' is not one of 'vit', 'cnn'"),
        (["--pos-embed", "rope"], "'rope' is not one of 'learned', 'sinusoidal'"),
    ],
)
def test_choices_are_checked_by_the_parser(tmp_path, mnist_dir, args, message):
    result = train(tmp_path, mnist_dir, *args)
    assert result.exit_code == 2 and message in plain_text(result.stderr) and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()


def test_unknown_config_key_names_the_section(tmp_path, mnist_dir):
    (tmp_path / "c.toml").write_text("[model]\nembed = 3\n")
    result = train(tmp_path, mnist_dir, "--config", tmp_path / "c.toml")
    assert result.exit_code == 1 and "[model]: unknown key 'embed'" in result.stderr


def test_missing_data_offline_says_where_files_are_expected(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tvu

    def offline(*args, **kwargs):
        raise RuntimeError("network unreachable")

    monkeypatch.setattr(tvu, "download_and_extract_archive", offline)
    monkeypatch.setattr("torchvision.datasets.mnist.download_and_extract_archive", offline)
    result = train(tmp_path, tmp_path / "empty")
    assert result.exit_code == 1
    assert (
        "MNIST (expected raw/train-images-idx3-ubyte" in result.stderr
        and "download failed" in result.stderr
        and "--data-dir" in result.stderr
    )


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "does not exist"),
        (lambda p: (p.write_text("not a checkpoint"), p)[1], "not a safetensors file"),
    ],
)
def test_eval_of_bad_checkpoints(tmp_path, make, message):
    result = run("eval", make(tmp_path / "x.safetensors"))
    assert result.exit_code == 1 and message in result.stderr and "Traceback" not in result.output


def test_same_name_twice_is_refused(tmp_path, mnist_dir):
    assert train(tmp_path, mnist_dir, "--name", "x").exit_code == 0
    again = train(tmp_path, mnist_dir, "--name", "x")
    assert again.exit_code == 1 and "already holds a run; resume it with --resume" in again.stderr


def test_version():
    result = run("--version")
    assert result.exit_code == 0 and result.output.startswith("vitcli ")


def test_eval_on_another_data_set_of_the_same_shape(tmp_path, mnist_dir, cifar10_dir):
    from fakedata import write_mnist

    assert train(tmp_path, mnist_dir, "--name", "m").exit_code == 0
    write_mnist(mnist_dir, folder="FashionMNIST")
    args = ("eval", tmp_path / "runs" / "m", "--dataset", "fashion-mnist", "--data-dir", mnist_dir, "--json")
    refused = run(*args)  # the same shape, but other classes: pairing them is the user's call
    assert refused.exit_code == 1 and "the data's T-shirt/top, Trouser" in refused.stderr
    other = run(*args, "--match-by-position")
    assert other.exit_code == 0, other.output
    report = json.loads(other.stdout)
    assert report["classes"][0] == "0 - zero" and report["data_classes"][0] == "T-shirt/top"
    wrong = run("eval", tmp_path / "runs" / "m", "--dataset", "cifar10", "--data-dir", cifar10_dir)
    assert wrong.exit_code == 1
    assert "trained on 28x28x1 images with 10 classes but cifar10 has 32x32x3" in wrong.stderr


@pytest.mark.slow
def test_compiled_training_runs_on_cpu(tmp_path, mnist_dir):
    result = train(tmp_path, mnist_dir, "--compile", "--name", "compiled")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "compiled" / "model.safetensors").is_file()
