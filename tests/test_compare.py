"""`vitcli compare`, every run's curves.png, and `--tensorboard`."""

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from cli_helpers import run, train
from fakedata import write_mnist
from PIL import Image
from sweep_helpers import only_sweep_dir, sweep

import vitcli.runtime.png
from vitcli.cli.common import console
from vitcli.events import EpochMetrics
from vitcli.runtime.interrupt import RunStopped
from vitcli.settings.config import load_config
from vitcli.training.checkpoint import read_metadata
from vitcli.training.run import train_run

LONG = "vit-with-a-rather-long-run-name-to-fold"  # longer than the table leaves for it at 80 columns
QUICK = ("--subset", 100, "--val-size", 20)  # of the small data set below


def small_mnist(tmp_path):
    """Fewer images than the conftest's: training here is for the files it leaves, not for learning."""
    return write_mnist(tmp_path / "small", train=200, test=50)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A ViT and a CNN, 2 epochs on 100 images each, trained once for the tests of this module."""
    tmp = tmp_path_factory.mktemp("compare")
    with pytest.MonkeyPatch.context() as mp:  # as conftest's `isolated`, for the module
        mp.setenv("VITCLI_CACHE_DIR", str(tmp / "cache"))
        data = small_mnist(tmp)
        for name, model in ((LONG, "vit"), ("cnn", "cnn")):
            trained = train(
                tmp, data, "--epochs", 2, *QUICK, "--batch-size", 100, "--model", model, "--name", name
            )
            assert trained.exit_code == 0, trained.output
    return tmp / "runs" / LONG, tmp / "runs" / "cnn"


@pytest.fixture
def drawn(monkeypatch):
    """The figures `vitcli.runtime.png.save` writes, as (path, number of axes, legend labels)."""
    figures, save = [], vitcli.runtime.png.save

    def spy(fig, path, *args):
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        labels = [t.get_text() for legend in legends for t in legend.get_texts()]
        figures.append((path, len(fig.axes), labels))
        return save(fig, path, *args)

    monkeypatch.setattr(vitcli.runtime.png, "save", spy)
    return figures


def _summary(run_dir):
    return json.loads(read_metadata(run_dir / "model.safetensors")["metrics"])


def test_compare_shows_a_vit_and_a_cnn_in_one_table_within_80_columns_and_one_png(
    tmp_path, two_runs, drawn, monkeypatch
):
    monkeypatch.setattr(console, "width", 80)
    monkeypatch.chdir(tmp_path)  # the picture's name as a user gives it, not a deep tmp_path
    png = Path("both.png")
    result = run("compare", *two_runs, "--out", png)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "cnn" in out and "vit d32 p7 x2" in out and f"wrote {png}" in out
    assert LONG[:10] in out and LONG not in out  # folded, not cut
    assert "…" not in out and max(len(line) for line in out.splitlines()) <= 80
    for run_dir in two_runs:
        m = _summary(run_dir)
        numbers = [f"{m['parameters']:,}", f"{100 * m['test_accuracy']:.2f}%", f"{m['test_loss']:.4f}"]
        numbers += [
            f"{100 * m['val_accuracy']:.2f}%",
            f"{m['train_seconds']:.1f}",
            f"{m['images_per_s']:,.0f}",
        ]
        assert all(n in out for n in numbers), (numbers, out)
    assert "17" in out and "n/a" in out  # the ViT's tokens; the CNN has none
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size == (900, 620)
    [(path, axes, labels)] = drawn
    assert path == png and axes == 4 and labels == [LONG, "cnn"]


def test_compare_json_holds_each_runs_metrics_and_history(tmp_path, two_runs, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the PNG's place: that is beside the runs
    png = two_runs[0].parent / "compare.png"
    try:
        result = run("compare", *two_runs, "--json")
        assert result.exit_code == 0, result.output
        assert f"wrote {png}" in result.stderr and png.is_file() and not (tmp_path / "compare.png").exists()
    finally:
        png.unlink(missing_ok=True)  # the runs are shared with other tests
    runs = json.loads(result.stdout)["runs"]
    assert [r["label"] for r in runs] == [LONG, "cnn"]
    for r, run_dir in zip(runs, two_runs):
        m = _summary(run_dir)
        for key in ("parameters", "tokens", "test_accuracy", "test_loss", "train_seconds", "images_per_s"):
            assert r[key] == m[key], key
        assert r["best_val"] == m["val_accuracy"] and r["best_epoch"] == m["best_epoch"] and r["finished"]
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        assert r["history"] == [json.loads(line) for line in lines] and r["epochs"] == 2
    assert [r["model"] for r in runs] == ["vit d32 p7 x2", "cnn"]


def test_every_run_writes_its_curves_png_and_overwrite_replaces_it_and_the_tensorboard_events(
    two_runs, tmp_path
):
    for run_dir in two_runs:
        with Image.open(run_dir / "curves.png") as image:
            assert image.format == "PNG" and image.size == (700, 280)
    data = small_mnist(tmp_path)
    first = train(tmp_path, data, *QUICK, "--name", "a", "--tensorboard")
    assert first.exit_code == 0, first.output
    run_dir = tmp_path / "runs" / "a"
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    (run_dir / "curves.png").write_bytes(b"not this run's")
    again = train(tmp_path, data, *QUICK, "--name", "a", "--overwrite")
    assert again.exit_code == 0, again.output
    assert (run_dir / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert not list((run_dir / "tensorboard").glob("events.*"))  # another run's scalars would mislead


def test_a_run_stopped_after_epoch_1_has_curves_and_compares_with_n_a_for_the_test(tmp_path, drawn):
    data = {"data_dir": str(small_mnist(tmp_path)), "subset": 100, "val_size": 20}
    settings = {"data": data, "run": {"out": str(tmp_path / "runs")}}
    cfg = load_config(None, {**settings, "train": {"epochs": 3, "batch_size": 64, "device": "cpu"}})

    def ctrl_c_after_epoch_1(event):
        if isinstance(event, EpochMetrics) and event.epoch == 1:
            os.kill(
                os.getpid(), signal.SIGINT
            )  # as Ctrl-C would: the epoch's files are written, then it stops

    with pytest.raises(RunStopped):
        train_run(cfg, on_event=ctrl_c_after_epoch_1)
    [stopped] = [p.parent for p in (tmp_path / "runs").glob("*/config.toml")]
    assert [path.name for path, *_ in drawn] == ["curves.png"] and (stopped / "curves.png").is_file()
    # One that never finished an epoch: a config and an empty log only.
    early = tmp_path / "runs" / "early"
    early.mkdir()
    shutil.copy(stopped / "config.toml", early)
    (early / "metrics.jsonl").write_text("")

    result = run("compare", stopped, early, "--json", "--out", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    later, never = json.loads(result.stdout)["runs"]
    assert not later["finished"] and later["epochs"] == 1 and later["test_accuracy"] is None
    assert later["parameters"] == 27_978 and later["tokens"] == 17 and later["best_epoch"] == 1
    assert later["train_seconds"] == json.loads((stopped / "metrics.jsonl").read_text())["seconds"]
    assert never["epochs"] == 0 and never["parameters"] is None and never["history"] == []
    table = run("compare", stopped, early, "--out", tmp_path / "c.png", "--overwrite").stdout
    words = " ".join(table.split())  # the model and how far the run got may wrap
    assert "stopped after epoch 1" in words and "stopped in epoch 1" in words and table.count("n/a") == 9


def test_compare_a_sweep_directory_writes_the_png_into_it(tmp_path):
    data = write_mnist(tmp_path / "data", train=300, test=50)  # the sweep's 200 training images and 60 more
    done = sweep(tmp_path, data, "--depth", 1, 2, "--embed-dim", 8)
    assert done.exit_code == 0, done.output
    sweep_dir = only_sweep_dir(tmp_path)
    result = run("compare", sweep_dir)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    assert all(row["run"] in result.stdout for row in rows) and f"sweep {sweep_dir.name}" in result.stdout
    assert (sweep_dir / "compare.png").is_file() and f"wrote {sweep_dir / 'compare.png'}" in result.stdout
    runs = json.loads(run("compare", sweep_dir, "--json", "--overwrite").stdout)["runs"]
    assert [r["test_accuracy"] for r in runs] == [row["test_accuracy"] for row in rows]


def test_compare_bad_paths_are_one_line(tmp_path, two_runs):
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "results.jsonl").write_text("")
    (tmp_path / "file.txt").write_text("x")
    cases = {
        tmp_path / "nope": "does not exist",
        tmp_path / "file.txt": "is neither a run directory",
        tmp_path: "is neither a run directory",
    }
    for path, said in cases.items():
        result = run("compare", path)
        assert result.exit_code == 1 and said in result.stderr
        assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    mixed = run("compare", two_runs[0], tmp_path / "sweep")
    assert mixed.exit_code == 1 and "pass exactly one sweep directory" in mixed.stderr
    empty = run("compare", tmp_path / "sweep")
    assert empty.exit_code == 1 and "no finished runs" in empty.stderr
    unwritable = run("compare", two_runs[0], "--out", tmp_path / "file.txt" / "c.png")
    assert unwritable.exit_code == 1 and unwritable.stderr.startswith("error: cannot write chart")


# --- --tensorboard -------------------------------------------------------------------------------------


def test_tensorboard_scalars_equal_the_metrics_log(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    data = small_mnist(tmp_path)
    result = train(tmp_path, data, "--epochs", 2, *QUICK, "--batch-size", 25, "--name", "tb", "--tensorboard")
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tb"
    assert "tensorboard = true" in (run_dir / "config.toml").read_text()
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for tag, key in (("train/loss", "train_loss"), ("val/accuracy", "val_accuracy"), ("lr", "lr")):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [1, 2]
        assert [s.value for s in scalars] == pytest.approx([m[key] for m in lines], rel=1e-6)
    for tag in ("train/accuracy", "val/loss", "images_per_s"):
        assert len(events.Scalars(tag)) == 2
    # Under 50 steps an epoch: each logged, numbered from the start of the run (not of the epoch).
    steps = [s.step for s in events.Scalars("step/loss")]
    assert len(steps) >= 4 and steps == list(range(1, len(steps) + 1))
    assert events.Scalars("step/accuracy")[-1].value == pytest.approx(lines[-1]["train_accuracy"], rel=1e-6)


def test_tensorboard_without_the_package_is_one_line_before_the_run_directory(
    tmp_path, mnist_dir, monkeypatch
):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: importing it fails
    result = train(tmp_path, mnist_dir, "--tensorboard")
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == "error: --tensorboard needs tensorboard: pip install 'vitcli[tensorboard]'"
    )
    assert not (tmp_path / "runs").exists()


def test_tensorboard_is_a_train_setting_of_config_files(tmp_path):
    (tmp_path / "c.toml").write_text("[train]\ntensorboard = true\n")
    assert "tensorboard = true" in run("train", "--config", tmp_path / "c.toml", "--print-config").stdout
    assert "tensorboard = false" in run("finetune", "--print-config").stdout
    off = run("train", "--config", tmp_path / "c.toml", "--no-tensorboard", "--print-config").stdout
    assert "tensorboard = false" in off


def test_runs_on_different_data_sets_are_compared_with_a_note_saying_so(tmp_path, two_runs):
    from fakedata import write_cifar10

    cifar = write_cifar10(tmp_path / "cifar", per_batch=40, test=20)
    trained = train(
        tmp_path, cifar, "--dataset", "cifar10", "--patch-size", 8, "--embed-dim", 8, "--name", "c"
    )
    assert trained.exit_code == 0, trained.output
    result = run("compare", two_runs[0], tmp_path / "runs" / "c", "--out", tmp_path / "c.png", "--json")
    assert result.exit_code == 0, result.output
    note = "the runs are on 2 data sets (cifar10, mnist): compare accuracies within one"
    assert json.loads(result.stdout)["notes"] == [note] and note in " ".join(result.stderr.split())


def test_runs_in_different_folders_get_no_picture_unless_told_where(tmp_path, two_runs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    elsewhere = tmp_path / "elsewhere" / "cnn"
    shutil.copytree(two_runs[1], elsewhere)
    result = run("compare", two_runs[0], elsewhere)
    assert result.exit_code == 0 and "runs compared" in result.stdout
    assert "no compare.png: the runs are in different folders; pass --out FILE" in " ".join(
        result.stderr.split()
    )
    assert not list(tmp_path.rglob("compare.png")) and not (two_runs[0].parent / "compare.png").exists()


def test_a_picture_is_replaced_only_with_overwrite_and_only_one_compare_made(tmp_path, two_runs):
    png = tmp_path / "c.png"
    assert run("compare", *two_runs, "--out", png).exit_code == 0
    again = run("compare", *two_runs, "--out", png)
    assert again.exit_code == 1 and " ".join(again.stderr.split()) == (
        f"error: {png} already exists; pass --overwrite to replace it, or choose another --out"
    )
    assert run("compare", *two_runs, "--out", png, "--overwrite").exit_code == 0
    photo = tmp_path / "photo.png"
    Image.new("RGB", (4, 4)).save(photo)  # a PNG, but not one compare drew
    refused = run("compare", *two_runs, "--out", photo, "--overwrite")
    said = " ".join(refused.stderr.split())
    assert refused.exit_code == 1 and "was not made by vitcli compare, so --overwrite leaves it alone" in said
    with Image.open(photo) as image:
        assert image.size == (4, 4)
