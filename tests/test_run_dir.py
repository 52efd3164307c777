"""A run directory: never overwritten unless asked, held by one process, and left in its last good state by
CUDA running out of memory or a full disk."""

import pytest
import torch
from cli_helpers import run, train
from run_helpers import assert_same_tensors, single_thread, tensors

from vitcli.training.state import load_state


def three_epochs(data_dir, out, name):
    return ["train", "--data-dir", data_dir, "--epochs", 3, "--device", "cpu", "--out", out, "--name", name]


@pytest.fixture(autouse=True)
def one_thread():
    yield from single_thread()


def test_no_command_overwrites_a_run_unless_asked(tmp_path, mnist_dir):
    assert train(tmp_path, mnist_dir, "--name", "x").exit_code == 0
    first = tensors(tmp_path / "runs" / "x" / "model.safetensors")
    again = train(tmp_path, mnist_dir, "--name", "x", "--seed", 1)
    assert again.exit_code == 1 and "already holds a run" in again.stderr and "--overwrite" in again.stderr
    assert_same_tensors(tensors(tmp_path / "runs" / "x" / "model.safetensors"), first)
    # The stored name of a config file is a default: repeating the run makes a new directory.
    repeated = run("train", "--config", tmp_path / "runs" / "x" / "config.toml")
    assert repeated.exit_code == 0, repeated.output
    assert (tmp_path / "runs" / "x-2" / "model.safetensors").is_file()
    assert_same_tensors(tensors(tmp_path / "runs" / "x" / "model.safetensors"), first)
    replaced = train(tmp_path, mnist_dir, "--name", "x", "--seed", 1, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert not torch.equal(
        tensors(tmp_path / "runs" / "x" / "model.safetensors")["head.weight"], first["head.weight"]
    )


def test_a_run_directory_is_held_by_one_process(tmp_path, mnist_dir):
    from vitcli.runtime.lock import DirectoryLock

    (tmp_path / "x").mkdir()
    with DirectoryLock(tmp_path / "x", "run directory"):  # as another `vitcli train --name x` would
        result = run("train", "--data-dir", mnist_dir, "--epochs", 1, "--out", tmp_path, "--name", "x")
    assert result.exit_code == 1 and "is in use by process" in result.stderr
    assert not (tmp_path / "x" / "config.toml").exists()
    sweep_dir = tmp_path / "sweeps" / "s"
    sweep_dir.mkdir(parents=True)
    with DirectoryLock(sweep_dir, "sweep directory"):
        result = run(
            "sweep",
            "--data-dir",
            mnist_dir,
            "--epochs",
            1,
            "--depth",
            1,
            2,
            "--out",
            tmp_path / "sweeps",
            "--name",
            "s",
        )
    assert result.exit_code == 1 and "the sweep directory" in result.stderr and "is in use" in result.stderr
    assert not (sweep_dir / "results.jsonl").exists()


def test_out_of_gpu_memory_is_one_line_and_keeps_the_last_finished_epoch(tmp_path, mnist_dir, monkeypatch):
    """No GPU here: a step of epoch 2 raises CUDA's out-of-memory error, as the GPU would."""
    import vitcli.training.engine

    real = vitcli.training.engine.train_epoch

    def out_of_memory_in_epoch_2(step, batches, device, epoch, *args, **kwargs):
        if epoch == 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(step, batches, device, epoch, *args, **kwargs)

    monkeypatch.setattr(vitcli.training.engine, "train_epoch", out_of_memory_in_epoch_2)
    result = run(*three_epochs(mnist_dir, tmp_path, "m"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "the GPU ran out of memory" in result.stderr and "lower --batch-size" in result.stderr
    assert load_state(tmp_path / "m" / "state.safetensors").epoch == 2
    assert run("eval", tmp_path / "m", "--json").exit_code == 0


def test_a_full_disk_is_one_line_and_keeps_the_last_good_state(tmp_path, mnist_dir, monkeypatch):
    import errno

    import vitcli.runtime.tensor_files

    real = vitcli.runtime.tensor_files.save_file
    calls = []

    def disk_full_at_the_third_checkpoint(tensors, path, metadata=None):
        # the run's weights (not its state, not the data cache): epoch 1's last and model, then epoch 2's last
        if path.startswith(f"{tmp_path / 'd'}/") and ".state.safetensors." not in path:
            calls.append(path)
            if len(calls) == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(vitcli.runtime.tensor_files, "save_file", disk_full_at_the_third_checkpoint)
    result = run(*three_epochs(mnist_dir, tmp_path, "d"))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "No space left on device" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "d").glob(".*.tmp"))
    assert len(calls) == 3 and load_state(tmp_path / "d" / "state.safetensors").epoch == 2  # epoch 1 kept
    resumed = run("train", "--resume", tmp_path / "d")
    assert resumed.exit_code == 0, resumed.output


def test_a_second_ctrl_c_between_two_writes_leaves_no_state_ahead_of_the_weights(
    tmp_path, mnist_dir, monkeypatch
):
    """The second Ctrl-C stops at once, possibly between epoch 1's weights and its state: the state must
    not be written before model.safetensors, or the run could be resumed but not evaluated."""
    import vitcli.runtime.tensor_files

    real = vitcli.runtime.tensor_files.save_file
    calls = []

    def ctrl_c_at_epoch_1s_model(tensors, path, metadata=None):
        # the run's weights (not its state, not the data cache): epoch 1's last, then its model
        if path.startswith(f"{tmp_path / 'k'}/") and ".state.safetensors." not in path:
            calls.append(path)
            if len(calls) == 2:
                raise KeyboardInterrupt
        return real(tensors, path, metadata=metadata)

    monkeypatch.setattr(vitcli.runtime.tensor_files, "save_file", ctrl_c_at_epoch_1s_model)
    result = run(*three_epochs(mnist_dir, tmp_path, "k"))
    assert result.exit_code == 130 and "Traceback" not in result.output
    assert not (tmp_path / "k" / "state.safetensors").exists() and not list((tmp_path / "k").glob(".*.tmp"))


def test_eval_of_a_run_still_training_says_these_are_its_best_weights_so_far(tmp_path, mnist_dir):
    """A real training in a second process: eval scores its model.safetensors, and says that the run is
    not finished; once the run has stopped, it says nothing of the kind."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "live"
    options = f"--epochs 200 --embed-dim 8 --depth 1 --val-size 20 --device cpu --out {tmp_path} --name live"
    command = [sys.executable, "-m", "vitcli", "train", "--data-dir", mnist_dir, *options.split()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    training = subprocess.Popen(
        list(map(str, command)), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "model.safetensors").is_file() and time.monotonic() < deadline:
            assert training.poll() is None, training.stderr.read()
            time.sleep(0.2)
        scored = run("eval", run_dir, "--json")
        assert scored.exit_code == 0, scored.output
        assert json.loads(scored.stdout)["in_progress"] is True
        said = " ".join(scored.stderr.split())
        assert f"note: {run_dir} is still training (process {training.pid} on" in said
        assert (
            "these are the weights of its best epoch so far (" in said
            and "of 200), not its final model" in said
        )
    finally:
        training.send_signal(signal.SIGTERM)
        assert training.wait(timeout=120) == 130
    after = run("eval", run_dir, "--json")
    assert after.exit_code == 0 and json.loads(after.stdout)["in_progress"] is False
    assert "still training" not in after.stderr
