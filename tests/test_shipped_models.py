"""Shipped models: trained checkpoints inside the package, listed by `vitcli models`, taken by name wherever a
checkpoint is (a path that exists wins), loaded from an installed wheel, and, where the real data is,
scoring exactly the accuracy their listing gives."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import plain_text, run
from conftest import SHARED_DATA, shared_mnist
from fakedata import write_cifar10, write_mnist
from PIL import Image
from run_helpers import installed_wheel
from safetensors import safe_open

import vitcli
from vitcli.models import count_parameters
from vitcli.models.shipped import FOLDER, shipped_checkpoint, shipped_model, shipped_models, shipped_names
from vitcli.training.checkpoint import checkpoint_file, load_checkpoint

TEN_MB = 10_000_000
FAKE_TEST_IMAGES = 200  # fakedata.write_mnist's test split


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """The current directory is tmp_path, where a shipped model's outputs go by default."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def package_files() -> set:
    return {p.relative_to(FOLDER) for p in FOLDER.rglob("*") if "__pycache__" not in p.parts}


def test_models_lists_every_entry_and_the_files_fit_in_10_mb():
    result = run("models")
    assert result.exit_code == 0, result.output
    text = plain_text(result.output)
    listed = json.loads(run("models", "--json").output)
    assert [m["name"] for m in listed] == shipped_names() and "mnist-vit" in shipped_names()
    for model in shipped_models():
        assert model.name in text and model.measured_by in result.output
        assert f"{100 * model.test_accuracy:.2f}% of {model.test_images:,}" in text
        assert model.file.is_file() and model.file.parent == FOLDER
    assert sum(m["bytes"] for m in listed) == sum(m.file.stat().st_size for m in shipped_models()) <= TEN_MB
    # Every safetensors file here has its entry: none is shipped unlisted.
    assert {p.name for p in FOLDER.glob("*.safetensors")} == {m.file.name for m in shipped_models()}


@pytest.mark.parametrize("name", shipped_names())
def test_each_file_is_its_entry_and_holds_only_the_model(name):
    model = shipped_model(name)
    checkpoint = load_checkpoint(name)
    assert count_parameters(checkpoint.model) == model.parameters
    with safe_open(str(model.file), "pt") as f:  # the model's tensors, no optimiser state beside them
        assert set(f.keys()) == set(checkpoint.model.state_dict())
    # The data set it is for, from the default data dir: the trainer's copy (folder:/tmp/cifar) is gone.
    assert checkpoint.config.data.dataset == model.dataset and checkpoint.config.data.data_dir is None
    assert shipped_checkpoint(name) == checkpoint_file(name) == model.file
    assert shipped_checkpoint("no-such-model") is None


def test_eval_attention_inspect_and_predict_take_a_name(in_tmp):
    data = write_mnist(in_tmp / "data")
    before = package_files()
    evaluated = run("eval", "mnist-vit", "--data-dir", data, "--device", "cpu", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert (report["dataset"], report["count"], len(report["classes"])) == ("mnist", FAKE_TEST_IMAGES, 10)

    drawn = run("attention", "mnist-vit", "--index", 3, "--data-dir", data, "--device", "cpu", "--json")
    assert drawn.exit_code == 0, drawn.output
    picture = in_tmp / "mnist-vit-outputs" / "attention" / "test-3.png"
    assert json.loads(drawn.stdout)["images"][0]["picture"] == str(picture.relative_to(in_tmp))
    assert picture.is_file()

    inspected = run("inspect", "mnist-vit", "--figure", "positions", "--device", "cpu", "--json")
    assert inspected.exit_code == 0, inspected.output
    assert (in_tmp / "mnist-vit-outputs" / "inspect" / "positions.png").is_file()

    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 13:16] = 255  # a one, light on black as MNIST's
    Image.fromarray(digit).save(in_tmp / "one.png")
    predicted = run("predict", "mnist-vit", in_tmp / "one.png", "--device", "cpu", "--json")
    assert predicted.exit_code == 0, predicted.output
    assert len(json.loads(predicted.stdout)["images"][0]["top_k"]) == 5
    assert package_files() == before  # nothing written into the package


def test_a_path_that_exists_wins_over_a_name(in_tmp):
    data = write_mnist(in_tmp / "data")
    (in_tmp / "mnist-vit").mkdir()
    shutil.copy(shipped_checkpoint("mnist-vit"), in_tmp / "mnist-vit" / "model.safetensors")
    assert checkpoint_file("mnist-vit") == (in_tmp / "mnist-vit" / "model.safetensors").relative_to(in_tmp)
    # a user's copy: its data config is the trainer's, as for any checkpoint; --data-dir gives the data
    assert vitcli.load("mnist-vit").config.data.data_dir is not None
    drawn = run("attention", "mnist-vit", "--data-dir", data, "--device", "cpu", "--json")
    assert drawn.exit_code == 0, drawn.output
    assert (in_tmp / "mnist-vit" / "attention" / "test-0.png").is_file()  # the run directory's
    assert not (in_tmp / "mnist-vit-outputs").exists()

    (in_tmp / "mnist-vit" / "model.safetensors").unlink()  # a folder of that name, without a checkpoint
    result = run("eval", "mnist-vit")
    assert result.exit_code == 1
    assert "mnist-vit is a directory without model.safetensors" in result.output
    assert str(shipped_checkpoint("mnist-vit")) in result.output  # where the shipped one is, to pass it


def test_an_unknown_name_is_one_line_listing_the_shipped_names(in_tmp):
    for command in (["eval", "mnsit-vit"], ["attention", "mnsit-vit"], ["predict", "mnsit-vit", "x.png"]):
        result = run(*command)
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.output, result.output
        assert "mnsit-vit does not exist: no such file or run directory" in lines[0]
        assert "did you mean mnist-vit?" in lines[0] and ", ".join(shipped_names()) in lines[0]


def test_the_shipped_models_load_from_an_installed_wheel(tmp_path):
    """Build the wheel from a copy of the source (setuptools writes build files beside it), install it into
    a folder of its own, and from there evaluate each model on fake data of its shape, away from src/."""
    wheel, target = installed_wheel(tmp_path)
    packed = set(zipfile.ZipFile(wheel).namelist())
    files = {f"vitcli/models/shipped/{m.file.name}" for m in shipped_models()}
    assert files | {"vitcli/models/shipped/listing.toml"} <= packed
    # fake data of each model's shape, by the data set it is for (a model for another one: add its writer)
    fake = {"mnist": write_mnist, "cifar10": write_cifar10}
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}

    def python(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    # `python -m vitcli eval NAME ...` (vitcli/__main__.py) that says first, on stderr, where its vitcli
    # and the checkpoint NAME stands for come from
    run_saying_where = (
        "import sys, vitcli, vitcli.cli\n"
        "from vitcli.training.checkpoint import checkpoint_file\n"
        "print(vitcli.__file__, checkpoint_file(sys.argv[2]), sep='\\n', file=sys.stderr)\n"
        "vitcli.cli.main()"
    )
    for model in shipped_models():
        data = fake[model.dataset](tmp_path / model.dataset)
        evaluated = python("-c", run_saying_where, "eval", model.name, "--data-dir", str(data), "--json")
        assert evaluated.stderr.splitlines()[:2] == [
            str(target / "vitcli" / "__init__.py"),
            str(target / "vitcli" / "models" / "shipped" / model.file.name),
        ]
        report = json.loads(evaluated.stdout)
        assert report["dataset"] == model.dataset and report["count"] > 0
        assert 0 <= report["accuracy"] <= 1


@pytest.mark.slow  # 15-20 s on one core: the 10,000 test images through a 206k-parameter ViT
@pytest.mark.skipif(shared_mnist() is None, reason="the real MNIST is not in ../shared/data")
def test_mnist_vit_scores_exactly_its_listed_accuracy_on_the_real_mnist():
    model = shipped_model("mnist-vit")
    result = run("eval", "mnist-vit", "--data-dir", shared_mnist(), "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["accuracy"], report["count"]) == (model.test_accuracy, model.test_images)


def shared_cifar_jpg() -> Path | None:
    """The JPEG copy of CIFAR-10 the CIFAR-10 models were trained and measured on, as a tar.xz."""
    root = Path(os.environ.get("VITCLI_SHARED_DATA", SHARED_DATA))
    archive = root / "cifar10-jpg.tar.xz"
    return archive if archive.is_file() else None


@pytest.mark.slow  # about a minute: the archive unpacked (10 s), then 16,000 test images on one core
@pytest.mark.skipif(shared_cifar_jpg() is None, reason="the CIFAR-10 JPEG copy is not in ../shared/data")
def test_the_cifar10_models_score_exactly_their_listed_accuracy_on_the_jpeg_copy(tmp_path):
    subprocess.run(["tar", "-xJf", str(shared_cifar_jpg()), "-C", str(tmp_path)], check=True)
    folder = tmp_path  # the archive holds train/<class>/ and test/<class>/
    for model in shipped_models():
        if model.dataset != "cifar10":
            continue
        result = run("eval", model.name, "--dataset", f"folder:{folder}", "--device", "cpu", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert (report["accuracy"], report["count"]) == (model.test_accuracy, model.test_images), model.name
