"""Small training sets (docs/small-data.md, "Small sets"): the batch size, learning rate and warmup chosen
for a set too small for 40 steps of 128 (`training/small_sets.py`), and the options that make small sets
out of large ones, `--classes` and `--per-class` (`data/datasets.py`). Through the real CLI on fake
MNIST IDX files."""

import json
import sys

import pytest
from cli_helpers import run
from fakedata import write_mnist
from run_helpers import single_thread

from vitcli.settings.config import TrainConfig
from vitcli.training.checkpoint import load_checkpoint
from vitcli.training.optim import warmup_cosine
from vitcli.training.small_sets import MIN_STEPS, WARMUP_MIN_STEPS, for_training_set

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


@pytest.fixture(autouse=True)
def one_thread():
    yield from single_thread()


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("data"), train=600, test=200)


def config(run_dir):
    return tomllib.loads((run_dir / "config.toml").read_text())


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# --- the rule ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("images", "batch"),
    [(1_295, 32), (640, 16), (100, 16), (2_560, 64), (5_119, 64), (5_120, 128), (45_000, 128)],
)
def test_a_small_set_gets_the_largest_batch_of_40_steps(images, batch):
    train, line = for_training_set(TrainConfig(lr=1e-2, warmup=0.2), images)
    assert train.batch_size == batch
    if batch == 128:  # not small: exactly as before, and nothing said
        assert (train.lr, train.warmup, line) == (1e-2, 0.2, None)
        return
    steps = images // batch
    assert steps >= MIN_STEPS or batch == 16  # 16 is the floor
    assert train.lr == pytest.approx(1e-2 * batch / 128)  # the linear scaling rule
    assert round(train.warmup * steps) >= WARMUP_MIN_STEPS  # the warmup, counted in steps, has its floor
    assert f"batch size {batch} ({steps} steps an epoch)" in line


def test_a_given_batch_size_is_kept_with_its_lr_and_warmup():
    given = TrainConfig(batch_size=128, lr=1e-2, warmup=0.2)
    assert for_training_set(given, 300) == (given, None)


def test_a_longer_warmup_than_the_floor_is_kept():
    train, _ = for_training_set(TrainConfig(warmup=5.0), 1_295)
    assert train.warmup == 5.0


def test_data_parallel_ranks_keep_a_batch_they_can_split():
    train, line = for_training_set(TrainConfig(), 1_295, processes=3)  # 32 is not a multiple of 3
    assert (train.batch_size, line) == (128, None)


def test_the_step_based_warmup_reaches_the_peak_after_its_floor_of_steps():
    train, _ = for_training_set(TrainConfig(epochs=30), 1_295)
    steps = 1_295 // train.batch_size
    warmup = round(train.warmup * steps)  # as the engine counts it
    factor = warmup_cosine(warmup, train.epochs * steps)
    assert warmup >= WARMUP_MIN_STEPS
    assert factor(0) == pytest.approx(1 / warmup)
    assert factor(WARMUP_MIN_STEPS - 2) < 1.0  # still warming up 48 steps in, past an epoch of 40
    assert factor(warmup) == pytest.approx(1.0)


# --- through a real run --------------------------------------------------------------------------------


def test_a_run_on_a_small_set_says_what_it_chose_and_records_it(tmp_path, mnist):
    out = tmp_path / "runs"
    args = ("--data-dir", mnist, "--epochs", 1, "--device", "cpu", "--out", out, "--name", "small")
    result = run("train", *args, "--embed-dim", 16)
    assert result.exit_code == 0, result.output
    # 600 images, 60 held out: 540 train, batch 16 (33 steps), lr 1e-2 x 16/128
    assert "a small training set (540 images): batch size 16 (33 steps an epoch), lr 0.00125" in " ".join(
        result.output.split()
    )
    saved = config(out / "small")["train"]
    assert (saved["batch_size"], saved["lr"]) == (16, 0.00125)
    assert round(saved["warmup"] * 33) == WARMUP_MIN_STEPS
    # After the first epoch's 33 steps the rate is at step 34 of the 50 of warmup: counted in steps.
    assert metrics(out / "small")[0]["lr"] == pytest.approx(0.00125 * 34 / 50)
    # The config's command trains the same way: resuming keeps the chosen values (nothing is re-chosen).
    more = run("train", "--resume", out / "small", "--epochs", 2)
    assert more.exit_code == 0, more.output
    assert config(out / "small")["train"]["batch_size"] == 16
    assert "a small training set" not in more.output


def test_an_explicit_batch_size_trains_as_given(tmp_path, mnist):
    out = tmp_path / "runs"
    args = ("--data-dir", mnist, "--epochs", 1, "--device", "cpu", "--out", out, "--name", "given")
    result = run("train", *args, "--embed-dim", 16, "--batch-size", 128)
    assert result.exit_code == 0, result.output
    assert "small training set" not in result.output
    assert config(out / "given")["train"]["lr"] == 1e-2


# --- --classes and --per-class -----------------------------------------------------------------------


def test_classes_and_per_class_train_and_evaluate_on_the_chosen_classes(tmp_path, mnist):
    out = tmp_path / "runs"
    args = ("--data-dir", mnist, "--epochs", 1, "--device", "cpu", "--out", out, "--name", "few")
    result = run("train", *args, "--embed-dim", 16, "--classes", "7,2,5 - five", "--per-class", 12)
    assert result.exit_code == 0, result.output
    evaluated = run("eval", out / "few", "--json")
    assert evaluated.exit_code == 0, evaluated.output
    # The test split is those classes' images, whole: 200 fake test images, 20 of each class.
    assert json.loads(evaluated.output)["count"] == 60
    # Validation: a tenth of the 3 classes' 180 training images, held out before the 12 of each are drawn.
    assert json.loads(run("eval", out / "few", "--json", "--split", "val").output)["count"] == 18
    # Relabelled in the order given, names or numbers.
    assert load_checkpoint(out / "few").info.classes == ["7 - seven", "2 - two", "5 - five"]
    saved = (out / "few" / "config.toml").read_text()
    assert 'classes = "7,2,5 - five"' in saved and "per_class = 12" in saved


def test_per_class_draws_the_same_images_for_every_seed_and_exactly_n_of_each(mnist):
    from vitcli.data.datasets import load_splits
    from vitcli.settings.config import DataConfig

    a = load_splits(DataConfig(dataset="mnist", data_dir=str(mnist), classes="1,3", per_class=9))
    b = load_splits(DataConfig(dataset="mnist", data_dir=str(mnist), classes="1,3", per_class=20))
    assert a.info.classes == ["1 - one", "3 - three"]
    assert a.train.labels.bincount().tolist() == [9, 9]
    assert a.test.labels.unique().tolist() == [0, 1] and len(a.test) == 40  # the whole test split of both
    # a larger count holds the smaller one: the first images of one seeded order
    small = {bytes(image.numpy()) for image in a.train.images}
    assert small <= {bytes(image.numpy()) for image in b.train.images}


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (("--classes", "7,eleven"), "has no class 'eleven'"),
        (("--classes", "7"), "is one class; a classifier needs two or more"),
        (("--classes", "7,7"), "names '7' twice"),
        (("--classes", "7,7 - seven"), "names one class of mnist twice"),
        (("--per-class", 10, "--subset", 100), "give one of them"),
        (("--classes", "1,2", "--per-class", 500), "has only"),
    ],
)
def test_bad_class_choices_are_one_line(tmp_path, mnist, extra, words):
    result = run("train", "--data-dir", mnist, "--device", "cpu", "--out", tmp_path / "runs", *extra)
    assert result.exit_code == 1, result.output
    assert words in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
