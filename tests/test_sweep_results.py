"""Sweep results (sweep_results.py): the results files, seeds aggregated as mean and standard deviation,
the results table, the charts (plots.py), and `vitcli report`."""

import csv
import io
import json
import statistics

import pytest
from cli_helpers import run
from PIL import Image
from rich.console import Console
from sweep_helpers import only_sweep_dir, sweep

from vitcli.cli.sweep_tables import sweep_table
from vitcli.sweeps.charts import write_charts
from vitcli.sweeps.results import aggregate, write_results

# --- results files and `vitcli report` ---------------------------------------------------------------


def test_results_files_hold_one_row_per_run(tmp_path, mnist_dir):
    assert sweep(tmp_path, mnist_dir, "--depth", 1, 2, "--embed-dim", 8).exit_code == 0
    sweep_dir = only_sweep_dir(tmp_path)
    jsonl = [json.loads(line) for line in (sweep_dir / "results.jsonl").read_text().splitlines()]
    table = list(csv.DictReader(io.StringIO((sweep_dir / "results.csv").read_text())))
    assert [r["values"] for r in jsonl] == [{"depth": 1}, {"depth": 2}]
    assert [r["depth"] for r in table] == ["1", "2"] and [r["key"] for r in table] == [
        r["key"] for r in jsonl
    ]
    assert jsonl[0]["config"]["model"]["embed_dim"] == 8 and jsonl[1]["config"]["model"]["depth"] == 2
    assert jsonl[0]["parameters"] < jsonl[1]["parameters"] and jsonl[0]["tokens"] == 17
    assert float(table[1]["test_accuracy"]) == pytest.approx(jsonl[1]["test_accuracy"])
    assert not list(sweep_dir.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_json_output_and_report_with_charts(tmp_path, mnist_dir):
    result = sweep(tmp_path, mnist_dir, "--embed-dim", 8, 16, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # progress went to stderr: stdout is JSON alone
    assert data["new_runs"] == 2 and data["axes"] == ["embed_dim"] and len(data["runs"]) == 2
    assert data["groups"][0]["test_accuracy"] >= data["groups"][1]["test_accuracy"]

    report = run("report", data["sweep"], "--plot")
    assert report.exit_code == 0, report.output
    assert f"{100 * data['groups'][0]['test_accuracy']:.2f}" in report.output and "wrote" in report.output
    with Image.open(f"{data['sweep']}/accuracy.png") as image:
        assert image.format == "PNG" and image.width >= 300 and image.height >= 200


def test_report_of_a_folder_without_results(tmp_path):
    result = run("report", tmp_path)
    assert result.exit_code == 1 and "holds no runs (config.toml, metrics.jsonl) or sweeps" in result.stderr


# --- aggregation and charts --------------------------------------------------------------------------


def fake_row(embed_dim, seed, test, status="finished", tokens=17, device="cpu"):
    row = {
        "key": f"{embed_dim}-{seed}",
        "values": {"embed_dim": embed_dim, "seed": seed},
        "axes": ["embed_dim", "seed"],
        "config": {"train": {"seed": seed}},
        "status": status,
    }
    if status == "failed":
        return {**row, "failure": "diverged", "error": "the loss became nan"}
    return {
        **row,
        "parameters": 1000 * embed_dim,
        "tokens": tokens,
        "val_accuracy": test - 0.01,
        "test_accuracy": test,
        "train_seconds": 10.0 * embed_dim,
        "images_per_s": 100.0,
        "peak_memory": 2**30 * seed,
        "device": device,
    }


def test_seeds_are_aggregated_as_mean_and_standard_deviation():
    rows = [
        fake_row(8, 0, 0.90),
        fake_row(8, 1, 0.92),
        fake_row(8, 2, 0.97),
        fake_row(16, 0, 0.95),
        fake_row(16, 1, 0.96),
        fake_row(16, 2, 0.0, status="failed"),
        fake_row(32, 0, 0.0, status="failed"),
    ]
    groups = aggregate(rows)
    assert [g.values for g in groups] == [{"embed_dim": 16}, {"embed_dim": 8}, {"embed_dim": 32}]
    best, second, failed = groups
    assert best.test_accuracy == pytest.approx(0.955) and best.test_std == pytest.approx(
        statistics.stdev([0.95, 0.96])
    )
    assert (
        best.status == "2/3 finished" and best.errors == ["the loss became nan"] and best.seeds == [0, 1, 2]
    )
    assert second.test_accuracy == pytest.approx(0.93) and second.test_std == pytest.approx(
        statistics.stdev([0.90, 0.92, 0.97])
    )
    assert second.peak_memory == 2 * 2**30 and failed.status == "failed" and failed.test_accuracy is None

    console = Console(width=200, record=True)
    console.print(sweep_table(groups, ["embed_dim", "seed"], "t"))
    text = console.export_text()
    assert "95.50±0.71" in text and "0-2" in text and "2/3 finished" in text


def test_a_single_seed_has_no_deviation():
    [group] = aggregate([fake_row(8, 0, 0.9)], ["embed_dim"])
    assert group.test_accuracy == 0.9 and group.test_std is None and group.status == "finished"


def test_charts_are_pngs_and_gpu_memory_is_charted_only_when_measured(tmp_path):
    cpu_rows = [fake_row(d, s, 0.9 + d / 1000, tokens=t) for d, t in ((8, 17), (16, 5)) for s in (0, 1)]
    written, notes = write_charts(cpu_rows, ["embed_dim", "seed"], tmp_path / "cpu")
    assert [p.name for p in written] == ["accuracy.png", "cost.png"]
    assert any("peak memory left out" in n for n in notes)
    sizes = {}
    for name, rows in (("cpu", cpu_rows), ("gpu", [{**r, "device": "cuda:0"} for r in cpu_rows])):
        write_charts(rows, ["embed_dim", "seed"], tmp_path / name)
        with Image.open(tmp_path / name / "cost.png") as image:
            assert image.format == "PNG" and image.height >= 300
            sizes[name] = image.width
        with Image.open(tmp_path / name / "accuracy.png") as image:
            assert image.width >= 600  # one panel per swept option
    assert sizes["gpu"] > sizes["cpu"]  # the memory panel is there


def test_no_charts_without_finished_runs(tmp_path):
    assert write_charts([fake_row(8, 0, 0, status="failed")], ["embed_dim"], tmp_path) == (
        [],
        ["no finished runs to chart"],
    )
    assert not list(tmp_path.iterdir())


def test_a_chart_that_cannot_be_written_is_one_line(tmp_path):
    sweep_dir = tmp_path / "done"
    write_results(sweep_dir, [fake_row(8, 0, 0.9), fake_row(16, 0, 0.95)])
    (sweep_dir / "accuracy.png").mkdir()  # where the chart should go
    result = run("report", sweep_dir, "--plot")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot write chart" in result.stderr


def test_table_shows_peak_memory_for_cuda_runs_only_and_status_only_when_a_run_failed():
    def text(rows):
        console = Console(width=200, record=True)
        console.print(sweep_table(aggregate(rows), ["embed_dim", "seed"], "t"))
        return console.export_text()

    cpu = text([fake_row(8, 0, 0.9), fake_row(16, 0, 0.95)])
    header = cpu.splitlines()[2]
    assert (
        "img/s" in header and "peak mem" not in header and "status" not in header and "CUDA runs only" in cpu
    )
    gpu = text([fake_row(8, 1, 0.9, device="cuda"), fake_row(16, 0, 0.0, status="failed", device="cuda")])
    assert "peak mem" in gpu and "1.0 GiB" in gpu and "status" in gpu and "failed" in gpu
    assert "CUDA runs only" not in gpu
