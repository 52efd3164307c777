"""A full disk and a read-only folder as they really happen: a real small tmpfs (conftest's
`small_disk`), not a patched `open`. safetensors says "No space left on device" through its own
SafetensorError, which the tests' stand-ins never raised."""

import json

from cli_helpers import run, train
from conftest import remount_read_only

QUICK = ("--subset", 200, "--val-size", 50, "--batch-size", 50)


def one_line(result, *words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_a_full_disk_during_training_is_one_line_that_says_so_and_leaves_no_half_file(
    tmp_path, mnist_dir, small_disk
):
    result = train(small_disk, mnist_dir, *QUICK, "--name", "full")  # a 112 KB checkpoint on 96 KiB
    one_line(result, "cannot write", "No space left on device; free space there, or choose another --out")
    run_dir = small_disk / "runs" / "full"
    assert (run_dir / "config.toml").is_file() and not list(run_dir.glob(".*.tmp"))


def test_a_read_only_folder_is_said_to_be_read_only_not_full(tmp_path, mnist_dir, small_disk):
    made = train(tmp_path, mnist_dir, *QUICK, "--name", "done")
    assert made.exit_code == 0, made.output
    remount_read_only(small_disk)
    result = train(small_disk, mnist_dir, *QUICK, "--name", "ro")
    one_line(result, "Read-only file system; choose another --out")
    page = run("report", tmp_path / "runs" / "done", "--html", small_disk / "r.html", "--device", "cpu")
    one_line(page, "Read-only file system; the file system is read-only: choose another --html")
    assert "free space" not in result.stderr + page.stderr


def test_a_full_disk_in_a_sweep_is_a_failed_row_of_kind_output_and_the_sweep_goes_on(
    tmp_path, mnist_dir, small_disk
):
    result = run(
        "sweep", "--data-dir", mnist_dir, *QUICK, "--epochs", 1, "--device", "cpu",
        "--out", small_disk / "sweeps", "--name", "s", "--seed", 0, 1,
    )  # fmt: skip
    assert "Traceback" not in result.output
    rows = [
        json.loads(line) for line in (small_disk / "sweeps" / "s" / "results.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 2  # the second run was tried after the first failed
    assert {r["status"] for r in rows} == {"failed"} and {r["failure"] for r in rows} == {"output"}
    assert all("No space left on device" in r["error"] for r in rows)
