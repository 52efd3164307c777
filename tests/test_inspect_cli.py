"""`vitcli inspect` and `vitcli train --snapshot-attention` through the CLI, on small fake data sets."""

import json
import re

import pytest
from cli_helpers import run, train
from PIL import Image
from run_helpers import assert_same_tensors, single_thread, tensors
from timm_helpers import finetune


@pytest.fixture(autouse=True)
def one_thread():
    yield from single_thread()


def vit_run(tmp_path, data_dir, name="v", *extra):
    result = train(tmp_path, data_dir, "--name", name, "--depth", 2, "--heads", 2, "--patch-size", 7, *extra)
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / name


def inspected(*args):
    result = run("inspect", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_pngs(paths, count):
    assert len(paths) == count
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and max(image.size) <= 2000  # fits a page


def test_every_figure_that_applies_from_the_checkpoint_alone(tmp_path, mnist_dir):
    run_dir = vit_run(tmp_path, mnist_dir)
    got = inspected(run_dir, "--images", 50)
    assert got["sample"] == {"split": "test", "images": 50, "of": 200}
    assert len(got["distance"]["pixels"]) == 2 and len(got["distance"]["pixels"][0]) == 2  # [block][head]
    assert got["distance"]["cell_pixels"] == [7.0, 7.0]
    assert 0 < max(max(row) for row in got["distance"]["pixels"]) <= 7 * 3 * 2**0.5  # the grid's diagonal
    similarity = got["positions"]["similarity"]
    assert len(similarity) == 16 and all(similarity[i][i] == pytest.approx(1, abs=1e-5) for i in range(16))
    assert len(got["filters"]["components"]) == 28 and got["filters"]["source"] == "patch projection 7x7"
    assert sum(got["classes"]["images"]) == 50 and len(got["classes"]["maps"]) == 10
    for name in ("distance", "positions", "filters", "classes"):
        assert_pngs(got[name]["picture"], 1)
        assert got[name]["picture"][0] == str(run_dir / "inspect" / f"{name}.png")


def test_the_table_fits_80_columns_and_names_the_pictures(tmp_path, mnist_dir, monkeypatch):
    run_dir = vit_run(tmp_path, mnist_dir)
    monkeypatch.chdir(tmp_path)  # the pictures' folder as a user names it, not a deep tmp_path
    result = run("inspect", run_dir, "--figure", "distance", "positions", "--images", 20, "--out", "p")
    assert result.exit_code == 0, result.output
    assert "distance.png" in result.stdout and "positions.png" in result.stdout
    assert "uniform" in result.stdout and not (tmp_path / "p" / "filters.png").exists()
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_figures_that_do_not_apply_are_said_in_one_line(tmp_path, mnist_dir):
    none = vit_run(tmp_path, mnist_dir, "n", "--pos-embed", "none")
    got = inspected(none, "--images", 20)
    assert "positions" not in got and "--pos-embed none" in got["skipped"]["positions"]
    asked = run("inspect", none, "--figure", "positions")
    assert asked.exit_code == 1 and "--pos-embed none" in asked.stderr and "Traceback" not in asked.output
    assert len(asked.stderr.strip().splitlines()) == 1
    assert train(tmp_path, mnist_dir, "--model", "cnn", "--name", "c").exit_code == 0
    cnn = run("inspect", tmp_path / "runs" / "c")
    assert cnn.exit_code == 1 and "--against" in cnn.stderr and len(cnn.stderr.strip().splitlines()) == 1
    attention = run("inspect", tmp_path / "runs" / "c", "--figure", "distance")
    assert attention.exit_code == 1 and "has no attention" in attention.stderr


def test_against_agrees_with_eval_for_both_models(tmp_path, mnist_dir):
    vit = vit_run(tmp_path, mnist_dir)
    assert train(tmp_path, mnist_dir, "--model", "cnn", "--name", "c").exit_code == 0
    cnn = tmp_path / "runs" / "c"
    got = inspected(vit, "--against", cnn)["against"]
    assert (
        got["images"] == 200 and sum(got[k] for k in ("both_right", "only_a", "only_b", "both_wrong")) == 200
    )
    for key, model in (("a_accuracy", vit), ("b_accuracy", cnn)):
        evaluated = json.loads(run("eval", model, "--json").stdout)
        assert got[key] == pytest.approx(evaluated["accuracy"])
    assert len(got["only_a_right"]) == got["only_a"] and len(got["per_class"]) == 10
    assert sum(row["images"] for row in got["per_class"]) == 200
    assert_pngs(got["picture"], 1)
    assert got["picture"][0].endswith("against-c.png")
    table = run("inspect", vit, "--against", cnn, "--overwrite")
    assert table.exit_code == 0 and "A - B" in table.stdout and "McNemar" in table.stdout


def test_snapshots_grow_the_run_directory_by_what_was_stated_and_draw_the_evolution(tmp_path, mnist_dir):
    run_dir = vit_run(tmp_path, mnist_dir, "s", "--epochs", 3, "--snapshot-attention", 4)
    stated = run("train", "--help")  # the help says where they go
    assert "--snapshot-attention" in stated.stdout
    result = train(tmp_path, mnist_dir, "--name", "t", "--depth", 2, "--epochs", 2, "--snapshot-attention", 4)
    said = re.search(r"attention snapshots: 4 validation images, ([\d,]+) bytes an epoch", result.output)
    assert result.exit_code == 0 and said, result.output
    where = tmp_path / "runs" / "t" / "attention-snapshots"  # the folder's path, not "t/attention-..."
    assert f"bytesanepoch,in{where}/" in "".join(result.output.split())  # the path may wrap
    per_epoch = int(said.group(1).replace(",", ""))
    assert per_epoch < 4 * 2 * 16 * 2 + 200  # 4 images x 2 blocks x 16 patches x 2 bytes, and a header
    files = sorted((tmp_path / "runs" / "t" / "attention-snapshots").glob("epoch-*.safetensors"))
    assert [f.name for f in files] == ["epoch-0001.safetensors", "epoch-0002.safetensors"]
    assert all(f.stat().st_size == per_epoch for f in files)
    got = inspected(run_dir, "--evolution")
    assert set(got) >= {"evolution"} and "distance" not in got
    evolution = got["evolution"]
    assert evolution["epochs"] == [1, 2, 3] and len(evolution["images"]) == 4
    maps = evolution["images"][0]["maps"]  # [epoch][block][row][col]
    assert len(maps) == 3 and len(maps[0]) == 2 and len(maps[0][0]) == 4
    assert_pngs(evolution["picture"], 4)
    assert evolution["picture"][0].endswith("evolution-val-0.png")


def test_snapshots_go_on_when_a_run_resumes_and_go_with_overwrite(tmp_path, mnist_dir):
    run_dir = vit_run(tmp_path, mnist_dir, "r", "--epochs", 1, "--snapshot-attention", 2)
    images = tensors(run_dir / "attention-snapshots" / "images.safetensors")
    assert run("train", "--resume", run_dir, "--epochs", 2).exit_code == 0
    assert (run_dir / "attention-snapshots" / "epoch-0002.safetensors").is_file()
    assert_same_tensors(tensors(run_dir / "attention-snapshots" / "images.safetensors"), images)
    # --overwrite replaces the run's own files, its snapshots included.
    assert vit_run(tmp_path, mnist_dir, "r", "--overwrite") == run_dir
    assert not list((run_dir / "attention-snapshots").glob("*.safetensors"))


@pytest.mark.parametrize(
    "extra, said",
    [
        (["--model", "cnn"], "needs a ViT"),
        (["--val-size", 0], "set --val-size above 0"),
        (["--val-size", 10, "--snapshot-attention", 11], "more than the 10 validation images"),
        (["--snapshot-attention", -1], "must be 0 (off)"),
    ],
)
def test_snapshots_that_cannot_be_kept_are_refused_before_a_run_directory_is_made(
    tmp_path, mnist_dir, extra, said
):
    result = train(tmp_path, mnist_dir, "--name", "x", "--snapshot-attention", 4, *extra)
    assert result.exit_code == 1 and said in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "runs" / "x").exists()


def test_evolution_of_a_run_without_snapshots_says_how_to_keep_them(tmp_path, mnist_dir):
    result = run("inspect", vit_run(tmp_path, mnist_dir), "--evolution")
    assert result.exit_code == 1 and "--snapshot-attention K" in result.stderr


def test_a_fine_tuned_timm_vit_has_every_figure(tmp_path, mnist_dir):
    tuned = finetune(
        tmp_path,
        mnist_dir,
        "--model",
        "test_vit",
        "--pretrained",
        "none",
        "--name",
        "f",
        "--snapshot-attention",
        2,
    )
    assert tuned.exit_code == 0, tuned.output
    got = inspected(tmp_path / "runs" / "f", "--images", 8, "--components", 5)
    assert got["model"] == "TimmViT" and got["grid_size"] == [4, 4]
    assert len(got["positions"]["similarity"]) == 16 and got["filters"]["source"] == "patch projection 8x8"
    assert len(got["filters"]["components"]) == 5 and sum(got["classes"]["images"]) == 8
    assert got["distance"]["cell_pixels"] == [7.0, 7.0]  # 28-pixel images seen as a 4x4 grid
    evolution = inspected(tmp_path / "runs" / "f", "--evolution")["evolution"]
    assert (
        evolution["epochs"] == [1] and len(evolution["images"][0]["maps"][0][0]) == 4
    )  # [epoch][block][row]


def test_snapshots_do_not_change_the_run(tmp_path, mnist_dir):
    """Reading attention in eval mode between epochs uses no random numbers and leaves training mode on:
    the weights are the same tensors with and without snapshots."""
    plain = vit_run(tmp_path, mnist_dir, "plain", "--epochs", 2, "--dropout", 0.1)
    kept = vit_run(tmp_path, mnist_dir, "kept", "--epochs", 2, "--dropout", 0.1, "--snapshot-attention", 3)
    assert_same_tensors(tensors(kept / "last.safetensors"), tensors(plain / "last.safetensors"))


def test_bad_input_is_one_line_before_any_data_is_read(tmp_path, mnist_dir, cifar10_dir):
    vit = vit_run(tmp_path, mnist_dir)
    assert (
        train(tmp_path, cifar10_dir, "--dataset", "cifar10", "--name", "c", "--patch-size", 8).exit_code == 0
    )
    for args, said in (
        (["--images", 0], "--images must be 1 or more"),
        (["--components", 0], "--components must be 1 or more"),
        (["--against", tmp_path / "nowhere"], "does not exist"),
        (["--against", tmp_path / "runs" / "c"], "same image shape"),
    ):
        result = run("inspect", vit, *args, "--data-dir", tmp_path / "no-data")
        assert result.exit_code == 1 and said in result.stderr, (args, result.output)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not (vit / "inspect").exists()


def test_against_pairs_the_classes_by_name_as_eval_does(tmp_path, mnist_dir):
    """A CNN trained on a folder whose classes are "0".."9" against a ViT of MNIST's "0 - zero"...: paired
    by name, said in a note, and the CNN's accuracy is what `vitcli eval` gives it on MNIST."""
    from fakedata import write_image_folder

    digits = write_image_folder(tmp_path / "digits", [str(k) for k in range(10)], (28, 28), "L")
    cnn = tmp_path / "runs" / "c"
    assert (
        train(tmp_path, digits, "--dataset", f"folder:{digits}", "--model", "cnn", "--name", "c").exit_code
        == 0
    )
    vit = vit_run(tmp_path, mnist_dir)
    result = run("inspect", vit, "--against", cnn, "--json")
    assert result.exit_code == 0, result.output
    assert "--against: classes matched by name" in result.stderr
    got = json.loads(result.stdout)["against"]
    evaluated = run("eval", cnn, "--dataset", "mnist", "--data-dir", mnist_dir, "--json")
    assert got["b_accuracy"] == pytest.approx(json.loads(evaluated.stdout)["accuracy"])
