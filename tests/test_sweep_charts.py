"""Sweep charts that read right (seeds averaged with error bars, categories as categories, cost.png only
when the cost can differ), and the sweep's per-run line with the whole run's time."""

import json
import re
import statistics

import pytest
from cli_helpers import run
from fakedata import write_mnist
from sweep_helpers import only_sweep_dir, sweep

from vitcli.sweeps.charts import accuracy_panels, cost_axis

TINY = ("--embed-dim", 8, "--depth", 1)


@pytest.fixture
def data(tmp_path):
    return write_mnist(tmp_path / "data", train=600, test=800)


def rows_of(sweep_dir):
    return [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]


def test_a_numeric_option_with_seeds_is_charted_as_means_with_error_bars(tmp_path, data):
    result = sweep(tmp_path, data, "--lr", 0.001, 0.01, "--seed", 0, 1, *TINY)
    assert result.exit_code == 0, result.output
    # Each run's line: the whole run's time, then the training's.
    lines = re.findall(r"test, (\d+) s \(train (\d+) s\)", result.output)
    assert len(lines) == 4 and all(int(total) >= int(train) for total, train in lines)

    sweep_dir = only_sweep_dir(tmp_path)
    rows = rows_of(sweep_dir)
    assert all(r["total_seconds"] >= r["train_seconds"] > 0 for r in rows)
    # --subset 200 caps the 800 test images at 500, in a sweep as in a run (--val-size 60 is kept).
    assert {r["test_count"] for r in rows} == {500} and rows[0]["capped"] == {"test": [500, 800]}

    report = run("report", sweep_dir, "--plot")
    assert report.exit_code == 0, report.output
    assert (sweep_dir / "accuracy.png").is_file() and not (sweep_dir / "cost.png").exists()
    assert "tokens per image and parameters are the same in every run: no cost chart" in report.output
    assert "test accuracy on 500 of the 800 test images (a test set cut by --subset)" in " ".join(
        report.output.split()
    )

    [panel] = accuracy_panels(rows, ["lr", "seed"])  # the seed is averaged, not a panel
    assert (panel.label, panel.categorical, panel.log) == ("--lr", False, True)  # 1e-3 to 1e-2: a decade
    assert [p.value for p in panel.points] == [0.001, 0.01] and [p.runs for p in panel.points] == [2, 2]
    for point in panel.points:
        accuracies = [100 * r["test_accuracy"] for r in rows if r["values"]["lr"] == point.value]
        assert point.mean == pytest.approx(statistics.fmean(accuracies))
        assert point.std == pytest.approx(statistics.stdev(accuracies))


def test_a_categorical_option_is_drawn_as_categories(tmp_path, data):
    result = sweep(tmp_path, data, "--pool", "cls", "gap", *TINY)
    assert result.exit_code == 0, result.output
    sweep_dir = only_sweep_dir(tmp_path)
    rows = rows_of(sweep_dir)

    report = run("report", sweep_dir, "--plot")
    assert report.exit_code == 0, report.output
    assert (sweep_dir / "accuracy.png").is_file()
    [panel] = accuracy_panels(rows, ["pool"])
    assert (panel.label, panel.categorical, panel.log) == ("--pool", True, False)
    assert [p.label for p in panel.points] == ["cls", "gap"] and [p.std for p in panel.points] == [0.0, 0.0]
    assert [p.mean for p in panel.points] == [100 * r["test_accuracy"] for r in rows]
    # The [CLS] token is one more token (and parameter vector): the cost can differ, so it is charted.
    assert cost_axis(rows) == "tokens" and (sweep_dir / "cost.png").is_file()


def fake(values, test, tokens=17, parameters=1000):
    return {
        "values": values,
        "status": "finished",
        "test_accuracy": test,
        "tokens": tokens,
        "parameters": parameters,
    }


def test_mixed_and_boolean_values_are_categories_and_only_seeds_give_no_panel():
    rows = [fake({"model": "vit", "augment": True}, 0.9), fake({"model": "cnn", "augment": False}, 0.8)]
    model, augment = accuracy_panels(rows, ["model", "augment"])
    assert model.categorical and [p.label for p in model.points] == ["cnn", "vit"]
    assert augment.categorical and [p.mean for p in augment.points] == pytest.approx([80.0, 90.0])
    assert accuracy_panels([fake({"seed": 0}, 0.9), fake({"seed": 1}, 0.8)], ["seed"]) == []
    # Dims 8 to 32 span less than a decade: a linear axis.
    [dims] = accuracy_panels([fake({"embed_dim": d}, 0.9) for d in (8, 16, 32)], ["embed_dim"])
    assert not dims.categorical and not dims.log and dims.label == "--embed-dim"
    assert cost_axis([fake({}, 0.9, parameters=p) for p in (10, 20)]) == "parameters"
    assert cost_axis([fake({}, 0.9, tokens=None, parameters=10)] * 2) is None


def test_a_sweep_of_seeds_alone_says_why_there_is_no_accuracy_chart(tmp_path, data):
    assert sweep(tmp_path, data, "--seed", 0, 1, *TINY).exit_code == 0
    report = run("report", only_sweep_dir(tmp_path), "--plot")
    assert report.exit_code == 0, report.output
    assert "only the seed was swept: no accuracy chart" in report.output
    assert not (only_sweep_dir(tmp_path) / "accuracy.png").exists()


def test_one_seed_is_not_called_a_mean_and_std_and_the_axis_is_not_zoomed_onto_noise(tmp_path, monkeypatch):
    """The sweep the fault test found: one seed, accuracies 22.7-25.8%, titled "mean ± std over seeds" on
    an axis from 22.7% to 25.8%. Now the title says one run a point, and the axis spans 10 points."""
    import vitcli.runtime.png
    from vitcli.sweeps.charts import write_charts

    drawn, save = [], vitcli.runtime.png.save

    def spy(fig, path):
        drawn.append((fig._suptitle.get_text(), fig.axes[0].get_ylim()))
        return save(fig, path)

    monkeypatch.setattr(vitcli.runtime.png, "save", spy)
    rows = [fake({"embed_dim": d}, a) for d, a in ((8, 0.227), (16, 0.258), (32, 0.241))]
    write_charts(rows, ["embed_dim"], tmp_path)
    [(title, (low, high))] = drawn
    assert "mean ± std" not in title and "one run per value" in title
    assert high - low >= 10 and low <= 22.7 and high >= 25.8
    seeded = [
        fake({"embed_dim": d, "seed": s}, a + s / 100) for d, a in ((8, 0.227), (16, 0.258)) for s in (0, 1)
    ]
    drawn.clear()
    write_charts(seeded, ["embed_dim", "seed"], tmp_path)
    assert drawn[0][0] == "test accuracy: mean ± std over seeds (up to 2 runs a point)"
