"""Output that fits the terminal: tables that never cut a number or drop a column at 80 columns (CliRunner
and a piped subprocess), epoch lines and the progress bar within 80 columns, no block art in a pipe."""

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run, train
from rich.console import Console

from vitcli.cli.fitting import FirstThatFits
from vitcli.cli.progress import TrainProgress
from vitcli.cli.tables import _confusion, epoch_line
from vitcli.events import EpochMetrics, EpochStart, StepDone
from vitcli.sweeps.results import write_results

AXES = {"embed_dim": (8, 16), "depth": (1, 2), "label_smoothing": (0.0, 0.1), "weight_decay": (0.05,)}


def fake_row(values: dict, seed: int, index: int, device="cpu", failed=False, big=True) -> dict:
    row = {
        "key": f"{index}-{seed}",
        "values": {**values, "seed": seed},
        "axes": [*values, "seed"],
        "config": {"train": {"seed": seed}},
        "status": "failed" if failed else "finished",
    }
    if failed:
        return {**row, "failure": "diverged", "error": "the loss became nan"}
    return {
        **row,
        "parameters": (1_234_567 if big else 2_394) + 1_000 * index,
        "tokens": 257 if big else 17,
        "val_accuracy": 0.12345 + 0.01 * index + 0.001 * seed,
        "test_accuracy": 0.98765 - 0.01 * index - 0.003 * seed,
        "train_seconds": (12_345.6 if big else 0.4) + index,
        "images_per_s": (123_456.0 if big else 561.0) + 10 * seed,
        "peak_memory": 3 * 2**30,
        "device": device,
    }


def fake_sweep(folder: Path, axes=AXES, device="cpu", failed=False, big=True) -> tuple[Path, list[dict]]:
    """results.jsonl of a sweep over `axes` with seeds 0-2: large numbers, every cell different."""
    settings = [{}]
    for name, values in axes.items():
        settings = [{**s, name: v} for s in settings for v in values]
    rows = [fake_row(s, seed, i, device, big=big) for i, s in enumerate(settings) for seed in range(3)]
    if failed:
        rows.append(fake_row(settings[0], 3, 0, device, failed=True))
    write_results(folder, rows)
    return folder, rows


def numbers(row: dict) -> list[str]:
    """The numbers of a finished run as the table writes them, each of which must appear whole."""
    return [f"{row['parameters']:,}", str(row["tokens"]), f"{row['train_seconds']:.1f}"]


def assert_fits(text: str, headers=(), cells=()) -> None:
    lines = text.splitlines()
    assert "…" not in text, text
    assert max(len(line.rstrip()) for line in lines) <= 80, text
    for header in headers:
        assert header in text, (header, text)
    for cell in cells:
        assert cell in text, (cell, text)


SWEEP_HEADERS = ("params", "tok", "val %", "test %", "train s", "img/s")


@pytest.mark.parametrize(
    "axes, device, failed, big, headers",
    [
        ({"embed_dim": (8, 16), "depth": (1, 2)}, "cpu", False, False, (" embed_dim ", " depth ", " seeds ")),
        ({"embed_dim": (8, 16), "depth": (1, 2)}, "cpu", False, True, ("setting",)),
        (AXES, "cpu", False, True, ("setting",)),
        (AXES, "cuda:0", True, True, ("setting", "peak mem", "status", "3/4 finished")),
    ],
)
def test_sweep_report_fits_80_columns_and_keeps_every_number(tmp_path, axes, device, failed, big, headers):
    folder, rows = fake_sweep(tmp_path / "sweep", axes, device, failed, big)
    result = run("report", folder)
    assert result.exit_code == 0, result.output
    finished = [r for r in rows if r["status"] == "finished"]
    values = [f"{name}={v:g}" for name in axes for v in axes[name]] if "setting" in headers else []
    cells = [c for r in finished for c in numbers(r)] + ["0-2", "123,466" if big else "571", *values]
    assert_fits(result.stdout, SWEEP_HEADERS + headers, cells)
    # the mean and deviation over the seeds of the best setting, whole
    assert "98.46±0.30" in result.stdout


def test_sweep_report_piped_is_80_columns_without_cutting(tmp_path):
    folder, rows = fake_sweep(tmp_path / "sweep")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    done = subprocess.run(
        [sys.executable, "-m", "vitcli", "report", str(folder)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert_fits(done.stdout, SWEEP_HEADERS + ("setting",), [c for r in rows for c in numbers(r)])
    assert "\x1b[" not in done.stdout  # no colour codes in a pipe either


def test_dry_run_table_fits_with_many_swept_options(tmp_path, mnist_dir):
    result = run(
        "sweep",
        "--data-dir",
        mnist_dir,
        "--out",
        tmp_path / "sweeps",
        "--embed-dim",
        8,
        16,
        "--depth",
        1,
        2,
        "--label-smoothing",
        0,
        0.1,
        "--weight-decay",
        0.05,
        0.1,
        "--dry-run",
    )
    assert result.exit_code == 0, result.output
    params = ("1,522", "2,394", "4,570", "7,850")
    assert_fits(result.stdout, ("#", "setting", "params", "tok", "plan"), params)
    assert "label_smoothing=0.1" in result.stdout and re.search(r"\b16 .*run", result.stdout)


def test_train_eval_and_attention_output_fits_80_columns(tmp_path, mnist_dir):
    result = train(tmp_path, mnist_dir, "--ema", 0.9, "--name", "vit", "--subset", 200, "--val-size", 60)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert_fits(result.stdout, ("accuracy", "loss", "parameters", "tokens per image", "throughput"))
    assert any(line.startswith("epoch 1/1 train ") and " ema " in line for line in lines), result.stdout
    assert re.search(r"lr \d\.\de[-+]\d\d \d+\.\ds [\d,]+ img/s", result.stdout)
    assert "27,978" in result.stdout  # the parameters, whole

    evaluated = run("eval", tmp_path / "runs" / "vit", "--data-dir", mnist_dir)
    assert evaluated.exit_code == 0, evaluated.output
    assert_fits(evaluated.stdout, ("data set", "images", "accuracy", "per class", "confusion"), ("9 - nine",))

    # CliRunner's output is no terminal: the pictures are left out unless asked for
    plain = run("attention", tmp_path / "runs" / "vit", "--index", 0, "--data-dir", mnist_dir)
    assert plain.exit_code == 0, plain.output
    assert "test[0]: predicted" in plain.stdout and "top classes" in plain.stdout and "▀" not in plain.stdout
    shown = run(
        "attention",
        tmp_path / "runs" / "vit",
        "--index",
        0,
        "--data-dir",
        mnist_dir,
        "--preview",
        "--overwrite",
    )
    assert shown.exit_code == 0 and "▀" in shown.stdout


def test_a_confusion_matrix_too_wide_is_split_not_cut():
    classes = [f"{i:02d} - class" for i in range(30)]
    matrix = [[1000 + 10 * i + j if i == j else j for j in range(30)] for i in range(30)]
    labels = [c.split(" - ")[0] for c in classes]
    console = Console(width=80, record=True)
    console.print(FirstThatFits(*(lambda n=n: _confusion(matrix, labels, n) for n in (30, 15, 10, 8, 6))))
    text = console.export_text()
    assert_fits(text, [f" {label} " for label in labels], [str(1000 + 11 * i) for i in range(30)])
    assert "predicted 00 to" in text


# --- epoch lines and the progress bar -----------------------------------------------------------------


def longest_epoch(ema: bool) -> EpochMetrics:
    return EpochMetrics(
        epoch=100,
        train_loss=12.3456,
        train_accuracy=1.0,
        val_loss=12.3456,
        val_accuracy=1.0,
        lr=9.3456e-3,
        seconds=12_345.6,
        images_per_s=1_234_567,
        ema_val_loss=1.0 if ema else None,
        ema_val_accuracy=1.0 if ema else None,
    )


@pytest.mark.parametrize("ema", [False, True])
def test_epoch_lines_fit_80_columns_with_everything_in_them(ema):
    console = Console(width=200, record=True)
    console.print(epoch_line(longest_epoch(ema), 100), highlight=False)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for part in ("epoch 100/100", "train 12.3456 100.00%", "val 12.3456 100.00%", "lr 9.3e-03", "12345.6s"):
        assert part in text
    assert "1,234,567 img/s" in text and ("ema 100.00%" in text) == ema


def test_a_usual_epoch_is_one_line():
    m = EpochMetrics(1, 0.9038, 0.6916, 0.3145, 0.9014, 9.33e-3, 6.1, 8947)
    line = Console(width=200, record=True)
    line.print(epoch_line(m, 5), highlight=False)
    assert (
        line.export_text() == "epoch 1/5 train 0.9038 69.16% val 0.3145 90.14% lr 9.3e-03 6.1s 8,947 img/s\n"
    )


def test_progress_bar_fits_80_columns():
    with TrainProgress(Console(width=80, file=io.StringIO(), force_terminal=True)) as listen:
        listen(EpochStart(epoch=100, epochs=100, steps=9_999))
        done = StepDone(
            epoch=100, step=1_234, steps=9_999, loss=12.3456, accuracy=1.0, images_per_s=1_234_567
        )
        listen(done)
        shown = Console(width=80, record=True)
        shown.print(listen.progress.get_renderable())
    [line] = shown.export_text().splitlines()
    assert len(line.rstrip()) <= 80 and "…" not in line, line
    assert "epoch 100/100" in line and "1234/9999 loss 12.3456 acc 100.00% 1,234,567 img/s" in line
