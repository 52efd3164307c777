"""A full disk and a read-only folder as they really happen: a real small tmpfs (conftest's
`small_disk`, or `tmpfs` here for one of another size or place), not a patched `open`. safetensors says
"No space left on device" through its own SafetensorError, which the tests' stand-ins never raised."""

import errno
import json
import os
import subprocess
import sys

import pytest
from cli_helpers import run, train
from conftest import remount_read_only

QUICK = ("--subset", 200, "--val-size", 50, "--batch-size", 50)


def one_line(result, *words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def tmpfs():
    """tmpfs(folder, size): a real tmpfs of `size` mounted at `folder` (root only: skipped where it
    cannot be mounted), unmounted afterwards."""
    mounted = []

    def mount(folder, size):
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"a tmpfs cannot be mounted here: {done.stderr.decode().strip() or 'not root'}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        subprocess.run(["umount", str(folder)], check=True)


def fill(disk):
    """Fill a tmpfs to the last byte."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


def vitcli(*args):
    """`vitcli ARGS...` as its own process: what a thread prints to stderr is in its stderr too."""
    command = [sys.executable, "-m", "vitcli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


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


def tensorboard_scalars(folder, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return events.Scalars(tag)


def test_tensorboard_events_on_a_full_disk_are_one_line_and_the_run_resumes_once_there_is_room(
    tmp_path, mnist_dir, tmpfs
):
    """TensorBoard's SummaryWriter wrote from a thread of its own: "Exception in thread" with the OSError's
    traceback, then the same OSError again as the run's traceback."""
    pytest.importorskip("tensorboard")
    run_dir = tmp_path / "runs" / "tb"
    events = tmpfs(run_dir / "tensorboard", "4k")  # the events of a few epochs; the checkpoints elsewhere
    settings = ("--data-dir", mnist_dir, *QUICK, "--device", "cpu", "--out", tmp_path / "runs")
    result = vitcli("train", *settings, "--name", "tb", "--epochs", 20, "--tensorboard")
    assert_one_events_line(
        result, events, "No space left on device; free space there, or choose another --out"
    )
    kept = len((run_dir / "metrics.jsonl").read_text().splitlines())  # the epochs the state holds
    assert 1 <= kept < 20 and not list(run_dir.glob(".*.tmp"))
    # Whole records only: TensorBoard reads the file to its last epoch, which is the state's.
    assert [s.step for s in tensorboard_scalars(events, "train/loss")] == list(range(1, kept + 1))
    subprocess.run(["mount", "-o", "remount,size=1m", str(events)], check=True)  # room again
    resumed = run("train", "--resume", run_dir)
    assert resumed.exit_code == 0, resumed.output
    assert [s.step for s in tensorboard_scalars(events, "train/loss")] == list(range(1, 21))


def test_tensorboard_events_in_a_read_only_folder_are_one_line(tmp_path, mnist_dir, tmpfs):
    pytest.importorskip("tensorboard")
    events = tmpfs(tmp_path / "runs" / "tb" / "tensorboard", "4k")
    remount_read_only(events)
    settings = ("--data-dir", mnist_dir, *QUICK, "--device", "cpu", "--out", tmp_path / "runs")
    result = vitcli("train", *settings, "--name", "tb", "--epochs", 1, "--tensorboard")
    assert_one_events_line(
        result, events, "Read-only file system; the file system is read-only: choose another --out"
    )


def assert_one_events_line(result, events, ending: str) -> None:
    """Exit 1 and one line naming the events file in `events` and its cause: no traceback, from the run or
    from a writer thread."""
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "Exception in thread" not in result.stderr, result.stderr
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: cannot write TensorBoard events {events}/"), error
    assert error[0].endswith(ending)


def test_a_chart_and_an_onnx_export_on_a_full_disk_and_a_read_only_one_are_one_line_each(
    tmp_path, mnist_dir, small_disk
):
    """matplotlib (through PIL) and torch.onnx's writer raise OSError: `writing` names the file."""
    pytest.importorskip("onnx")
    made = train(tmp_path, mnist_dir, *QUICK, "--name", "done")
    assert made.exit_code == 0, made.output
    run_dir = tmp_path / "runs" / "done"

    def chart_and_export_say(cause: str) -> None:
        chart = run("compare", run_dir, "--out", small_disk / "c.png")
        one_line(chart, f"error: cannot write chart {small_disk / 'c.png'}: {cause}")
        onnx = run("export", run_dir, "--format", "onnx", "--out", small_disk / "m.onnx")
        one_line(onnx, f"error: cannot write {small_disk / 'm.onnx'}: {cause}")

    fill(small_disk)
    chart_and_export_say("No space left on device; free space there, or choose another --out")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no half file, no temporary one
    (small_disk / "filler").unlink()
    remount_read_only(small_disk)
    chart_and_export_say("Read-only file system; the file system is read-only: choose another --out")
