"""The 95% interval of an accuracy (training/confidence.py): the Wilson bounds against hand-worked and
published values, the rule for which splits are small, and the interval in `vitcli eval`'s table and
--json, the run table and the checkpoint's metrics, on a real run with a test split of 359 images."""

import dataclasses
import io
import json
import math
from pathlib import Path

import pytest
from cli_helpers import run, train
from fakedata import write_mnist
from rich.console import Console
from run_helpers import settings

from vitcli.cli.tables import eval_tables, run_table
from vitcli.lab.evaluate import EvalReport
from vitcli.lab.reporting import stats
from vitcli.settings.config import load_config
from vitcli.training.checkpoint import load_checkpoint
from vitcli.training.confidence import SMALL_TEST, Z_95, shows_interval, wilson_interval
from vitcli.training.evaluation import EvalResult
from vitcli.training.run import train_run

# --- the interval --------------------------------------------------------------------------------------


def test_wilson_at_none_and_all_correct_by_hand():
    # k = 0: the bounds are 0 and z²/(n + z²); k = n: n/(n + z²) and 1, exactly.
    z2 = Z_95**2
    assert wilson_interval(0, 10) == (0.0, pytest.approx(z2 / (10 + z2), abs=1e-12))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + z2), abs=1e-12), 1.0)
    assert wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=5e-5)  # 3.8415 / 13.8415
    assert wilson_interval(10, 10)[0] == pytest.approx(0.7225, abs=5e-5)
    assert wilson_interval(359, 359) == (pytest.approx(359 / (359 + z2), abs=1e-12), 1.0)


@pytest.mark.parametrize(("correct", "total"), [(5, 10), (1, 3), (348, 359), (81, 263), (9_700, 9_999)])
def test_wilson_is_the_textbook_formula(correct, total):
    # Wilson's bounds as they are usually written, in counts: (k + z²/2 ± z·sqrt(k(n-k)/n + z²/4)) / (n + z²).
    k, n, z = correct, total, Z_95
    half = z * math.sqrt(k * (n - k) / n + z * z / 4)
    low, high = wilson_interval(correct, total)
    assert low == pytest.approx((k + z * z / 2 - half) / (n + z * z), abs=1e-12)
    assert high == pytest.approx((k + z * z / 2 + half) / (n + z * z), abs=1e-12)


def test_wilson_of_half_right_is_symmetric_about_a_half():
    low, high = wilson_interval(5, 10)
    assert low + high == pytest.approx(1.0, abs=1e-12)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)


@pytest.mark.parametrize(
    ("correct", "total", "low", "high"),
    [
        # Newcombe (1998), Statistics in Medicine 17:857-872, Table II, method 3 (score, no correction).
        (81, 263, 0.2553, 0.3662),
        (15, 148, 0.0624, 0.1605),
        (0, 20, 0.0, 0.1611),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_matches_published_values(correct, total, low, high):
    assert tuple(round(bound, 4) for bound in wilson_interval(correct, total)) == (low, high)


def test_wilson_is_within_0_1_and_holds_the_accuracy():
    cases = [(k, n) for n in range(1, 81) for k in range(n + 1)]
    cases += [(k, n) for n in (359, 9_999, 10_000, 60_000) for k in (0, 1, n // 2, n - 1, n)]
    for k, n in cases:
        low, high = wilson_interval(k, n)
        assert 0.0 <= low <= k / n <= high <= 1.0, (k, n, low, high)
        assert low < high, (k, n)


def test_the_report_uses_the_same_function():
    assert stats.wilson_interval is wilson_interval


# --- which splits are small ------------------------------------------------------------------------------


def test_small_is_under_ten_thousand_images():
    assert SMALL_TEST == 10_000  # MNIST's, Fashion-MNIST's and CIFAR's test sets are not small
    assert shows_interval(1) and shows_interval(359) and shows_interval(9_999)
    assert not shows_interval(10_000) and not shows_interval(60_000)
    assert not shows_interval(0)  # no images, no interval


def two_classes(count: int) -> EvalResult:
    """A result on `count` images of two classes, 98 of each 100 right (as near as whole images go)."""
    half = count // 2
    wrong = round(0.02 * half)
    confusion = [[half - wrong, wrong], [wrong, count - half - wrong]]
    right = confusion[0][0] + confusion[1][1]
    return EvalResult(loss=0.1, accuracy=right / count, count=count, confusion=confusion)


def shown(*renderables) -> str:
    console = Console(width=80, record=True, file=io.StringIO())
    for renderable in renderables:
        console.print(renderable)
    return console.export_text()


def interval_text(result: EvalResult) -> str:
    low, high = wilson_interval(result.confusion[0][0] + result.confusion[1][1], result.count)
    return f"{100 * low:.1f}-{100 * high:.1f}%"


@pytest.mark.parametrize(("count", "small"), [(9_999, True), (10_000, False)])
def test_eval_shows_the_interval_on_a_small_split_and_its_json_always(count, small):
    result = two_classes(count)
    report = EvalReport(Path("run/model.safetensors"), "mnist", "test", ["a", "b"], result)
    text = shown(*eval_tables(report))
    assert ("95% CI" in text) is small and (interval_text(result) in text) is small, text
    assert f"{count:,}" in text and "98.0" in text
    numbers = json.loads(json.dumps(report.to_dict()))
    assert numbers["count"] == count
    assert numbers["accuracy_interval"] == list(wilson_interval(round(result.accuracy * count), count))


# --- on a real run -----------------------------------------------------------------------------------------


def test_the_run_table_shows_the_interval_only_for_a_small_test_set(tmp_path):
    data = write_mnist(tmp_path / "data", test=359)
    result = train_run(load_config(None, settings(data, tmp_path / "runs", epochs=1)))
    small = shown(run_table(result))
    low, high = result.test.interval
    assert "95% CI (Wilson), 359 images" in small and f"{100 * low:.1f}-{100 * high:.1f}%" in small, small
    big = dataclasses.replace(result, test=two_classes(10_000))
    large = shown(run_table(big))
    assert "95% CI" not in large and "98.00%" in large
    # Else the same table: the interval is one row more, under the test row.
    assert len(small.splitlines()) == len(large.splitlines()) + 1


def test_eval_and_train_of_a_359_image_test_split_give_the_interval(tmp_path):
    data = write_mnist(tmp_path / "data", test=359)
    trained = train(tmp_path, data, "--name", "small", "--val-size", 60)
    assert trained.exit_code == 0, trained.output
    run_dir = tmp_path / "runs" / "small"
    metrics = load_checkpoint(run_dir, "cpu").metrics
    correct = round(metrics["test_accuracy"] * 359)
    low, high = wilson_interval(correct, 359)
    assert metrics["test_count"] == 359 and metrics["test_accuracy_interval"] == [low, high]
    printed = f"{100 * low:.1f}-{100 * high:.1f}%"
    assert "95% CI (Wilson), 359 images" in trained.stdout and printed in trained.stdout, trained.stdout

    table = run("eval", run_dir, "--data-dir", data)
    assert table.exit_code == 0, table.output
    header = next(line for line in table.stdout.splitlines() if "accuracy" in line and "images" in line)
    assert "95% CI" in header and printed in table.stdout, table.stdout
    assert max(len(line.rstrip()) for line in table.stdout.splitlines()) <= 80 and "…" not in table.stdout

    numbers = json.loads(run("eval", run_dir, "--data-dir", data, "--json").output)
    right = sum(row[i] for i, row in enumerate(numbers["confusion"]))  # counted, not from the accuracy
    assert numbers["count"] == 359 and numbers["accuracy_interval"] == list(wilson_interval(right, 359))
    assert numbers["accuracy_interval"][0] <= numbers["accuracy"] <= numbers["accuracy_interval"][1]
    val = json.loads(run("eval", run_dir, "--data-dir", data, "--json", "--split", "val").output)
    assert val["count"] == 60 and len(val["accuracy_interval"]) == 2
