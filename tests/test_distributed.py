"""Data-parallel training on the CPU with gloo: 2 processes against 1 on the same global batch and seed,
one run directory, Ctrl-C, a lost rank (kill -9), an error only rank 1 hits, and a resume on another
number of processes."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import run
from fakedata import write_mnist
from run_helpers import REPO, tensors

from vitcli.data.batches import Augmentation, Batches
from vitcli.data.datasets import Split
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import EXIT_RANK_LOST, RankLost, VitcliError
from vitcli.runtime.interrupt import GracefulStop
from vitcli.runtime.launch import AFTER_LOSS, failed, without_nproc
from vitcli.training.checkpoint import load_checkpoint

# The augmentation, mixup and the small ViT all run, so that every random draw is shared by the ranks.
SETTINGS = [
    "--epochs", 3, "--batch-size", 16, "--embed-dim", 16, "--depth", 2, "--heads", 2, "--mixup", 0.2,
    "--val-size", 100, "--device", "cpu",
]  # fmt: skip


def vitcli(*args, first_on_path=(), **popen):
    """`python -m vitcli ARGS` in a new process group (as a terminal's job: Ctrl-C reaches all of it), with
    the folders `first_on_path` on PYTHONPATH before vitcli's."""
    path = os.pathsep.join([*map(str, first_on_path), str(REPO / "src")])
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "vitcli", *map(str, args)]
    return subprocess.Popen(command, env=env, start_new_session=True, text=True, **popen)


def assert_same_model(a_dir, b_dir):
    """The two runs' weights and test logits agree within float tolerance. The attention's key bias is
    left out of the weights: its gradient is zero in exact arithmetic (softmax ignores a shift shared by
    all keys), so AdamW turns rounding noise into lr-sized steps that change no output."""
    a, b = tensors(a_dir / "model.safetensors"), tensors(b_dir / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        if name.endswith("attn.qkv.bias"):  # (query, key, value) biases
            dim = a[name].shape[0] // 3
            keep = torch.cat([torch.arange(dim), torch.arange(2 * dim, 3 * dim)])
            a[name], b[name] = a[name][keep], b[name][keep]
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)
    images = torch.rand(8, 1, 28, 28)
    logits = [
        load_checkpoint(d / "model.safetensors", torch.device("cpu")).model(images) for d in (a_dir, b_dir)
    ]
    torch.testing.assert_close(logits[0], logits[1], atol=1e-4, rtol=1e-4)


def epochs(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_processes_train_the_weights_of_one_in_one_run_directory(tmp_path):
    data = write_mnist(tmp_path / "data", train=400, test=100)
    out = tmp_path / "runs"
    two = vitcli("train", "--data-dir", data, *SETTINGS, "--out", out, "--name", "two", "--nproc", 2,
                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    stdout, stderr = two.communicate(timeout=300)
    assert two.returncode == 0, stderr
    assert stdout.count("saved") == 1 and "Traceback" not in stderr  # rank 0 speaks for both
    one = run("train", "--data-dir", data, *SETTINGS, "--out", out, "--name", "one")
    assert one.exit_code == 0, one.output
    assert sorted(p.name for p in out.iterdir()) == ["one", "two"]
    assert_same_model(out / "one", out / "two")
    for a, b in zip(epochs(out / "one"), epochs(out / "two")):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy"):  # summed over both ranks
            assert a[key] == pytest.approx(b[key], rel=1e-4), key


def test_ctrl_c_stops_both_processes_and_the_run_resumes_on_one(tmp_path):
    data = write_mnist(tmp_path / "data", train=400, test=100)
    out = tmp_path / "runs"
    child = vitcli("train", "--data-dir", data, *SETTINGS, "--out", out, "--name", "stopped", "--nproc", 2,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    metrics, deadline = out / "stopped" / "metrics.jsonl", time.monotonic() + 120
    while (
        not (metrics.exists() and metrics.read_text())
        and child.poll() is None
        and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    os.killpg(child.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: every process of the job
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr
    assert "vitcli train --resume" in " ".join(stderr.split()) and "Traceback" not in stderr
    if len(epochs(out / "stopped")) == 3:
        pytest.skip("the run finished before Ctrl-C reached it (a very fast machine)")

    resumed = run("train", "--resume", out / "stopped")  # one process: the global batch is the same
    assert resumed.exit_code == 0, resumed.output
    whole = run("train", "--data-dir", data, *SETTINGS, "--out", out, "--name", "whole")
    assert whole.exit_code == 0, whole.output
    assert_same_model(out / "whole", out / "stopped")
    assert [m["epoch"] for m in epochs(out / "stopped")] == [1, 2, 3]


def worker_pid(launcher: subprocess.Popen, rank: int) -> int | None:
    """The pid of the process of `rank` that --nproc's launcher started: the launcher's child whose
    environment has RANK=rank (Linux's /proc)."""
    for children in Path(f"/proc/{launcher.pid}/task").glob("*/children"):
        for pid in children.read_text().split():
            with contextlib.suppress(OSError):  # ended meanwhile
                if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                    return int(pid)
    return None


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the workers through Linux's /proc")
def test_a_rank_killed_by_sigkill_is_one_line_naming_it_and_the_run_resumes(tmp_path):
    data = write_mnist(tmp_path / "data", train=400, test=100)
    out = tmp_path / "runs"
    child = vitcli("train", "--data-dir", data, *SETTINGS, "--out", out, "--name", "lost", "--nproc", 2,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        metrics, deadline = out / "lost" / "metrics.jsonl", time.monotonic() + 120
        while not (metrics.exists() and metrics.read_text()) and child.poll() is None:
            assert time.monotonic() < deadline, "no epoch in 120 s"
            time.sleep(0.02)
        rank1 = worker_pid(child, 1)
        assert rank1 is not None or child.poll() is not None, "rank 1 is not among the launcher's children"
        if rank1 is not None:
            os.kill(rank1, signal.SIGKILL)  # what the OOM killer or `kill -9` does: no handler runs
        _, stderr = child.communicate(timeout=120)
    finally:
        if child.poll() is None:  # a failed assertion: leave no training behind
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    if child.returncode == 0:
        pytest.skip("the run finished before rank 1 was killed (a very fast machine)")

    assert child.returncode == EXIT_RANK_LOST, stderr
    assert stderr.splitlines() == [
        f"error: rank 1 of 2 was lost (killed by signal 9, SIGKILL); the state of the last finished epoch "
        f"is kept: resume with vitcli train --resume {out / 'lost'}"
    ]
    resumed = run("train", "--resume", out / "lost")  # one process: the global batch is the same
    assert resumed.exit_code == 0, resumed.output
    assert [m["epoch"] for m in epochs(out / "lost")] == [1, 2, 3]


# Loaded by every process started with this folder on PYTHONPATH (Python's `site` imports it): rank 1,
# and only rank 1, cannot read the data set, an error the other ranks never see.
RANK_1_CANNOT_READ = """
import os

if os.environ.get("RANK") == "1":
    import vitcli.training.run
    from vitcli.errors import DataError

    def load_splits(*args, **kwargs):
        raise DataError("cannot read the data set here (rank 1 alone)")

    vitcli.training.run.load_splits = load_splits
"""


def test_an_error_only_rank_1_hits_is_its_one_line_in_the_terminal(tmp_path, mnist_dir):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(RANK_1_CANNOT_READ)
    child = vitcli("train", "--data-dir", mnist_dir, *SETTINGS, "--out", tmp_path / "runs", "--nproc", 2,
                   first_on_path=[shim], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 1, stderr
    assert stderr.splitlines() == ["error: rank 1 of 2: cannot read the data set here (rank 1 alone)"]


def test_the_launcher_names_the_rank_that_failed_first_and_says_what_only_it_knows(tmp_path):
    """`failed` reads the ranks' exit codes in the order the agent saw them end; a rank that only found
    another gone (EXIT_RANK_LOST) is never the cause, even when seen first."""
    resume = "the state of the last finished epoch is kept: resume with vitcli train --resume runs/x"
    (tmp_path / AFTER_LOSS).write_text(resume)
    with pytest.raises(RankLost, match=rf"^rank 1 of 2 was lost \(killed by signal 9, SIGKILL\); {resume}$"):
        failed({0: EXIT_RANK_LOST, 1: -9}, 2, tmp_path)
    with pytest.raises(RankLost, match=r"^rank 2 of 4 was lost \(killed by signal 9, SIGKILL\)"):
        failed({2: -9, 0: -15, 1: EXIT_RANK_LOST}, 4, tmp_path)  # rank 0 stopped by the agent's SIGTERM
    (tmp_path / AFTER_LOSS).unlink()
    with pytest.raises(RankLost, match="the run had not started training: run the same command again$"):
        failed({1: -9}, 2, tmp_path)  # lost before rank 0 held the run directory

    (tmp_path / "rank-1").write_text("cannot read the data set")
    with pytest.raises(VitcliError, match="^rank 1 of 2: cannot read the data set$"):
        failed({0: EXIT_RANK_LOST, 1: 1}, 2, tmp_path)
    # its error written, then the agent's SIGTERM while it was still ending (a loaded machine): not lost
    with pytest.raises(VitcliError, match="^rank 1 of 2: cannot read the data set$"):
        failed({0: EXIT_RANK_LOST, 1: -15}, 2, tmp_path)
    assert failed({0: 1, 1: 1}, 2, tmp_path) == 1  # rank 0 printed its own line (the same error)
    assert failed({0: 130, 1: 130}, 2, tmp_path) == 130  # a stop: rank 0 said how to resume
    (tmp_path / "rank-1").unlink()
    assert failed({1: 1, 0: EXIT_RANK_LOST}, 2, tmp_path) == 1  # a bug on rank 1: its traceback is printed


def test_a_global_batch_the_processes_cannot_split_is_one_line_before_any_process_starts(tmp_path, mnist_dir):
    result = run("train", "--data-dir", mnist_dir, "--batch-size", 32, "--nproc", 3, "--out", tmp_path / "r")
    assert result.exit_code == 1
    assert (
        "--batch-size 32 is the global batch, split over 3 processes: pass a multiple of 3" in result.stderr
    )
    assert not (tmp_path / "r").exists()
    zero = run("train", "--data-dir", mnist_dir, "--nproc", 0, "--out", tmp_path / "r")
    assert zero.exit_code == 1 and "--nproc must be at least 1, got 0" in zero.stderr


def test_nproc_inside_torchrun_is_refused(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    result = run("train", "--data-dir", mnist_dir, "--nproc", 2, "--out", tmp_path / "r")
    assert result.exit_code == 1 and "under torchrun leave it out" in result.stderr


def test_the_shards_of_a_global_batch_are_the_batch_of_one_process():
    """Every rank augments and mixes the whole global batch with the same draws and keeps its rows."""
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    split = Split(images, torch.arange(64) % 10)
    preprocess = Preprocessing((0.5,), (0.25,)).on(torch.device("cpu"))
    augment = Augmentation("digits", randaugment=2, erase=0.25, mixup=0.5, cutmix=0.5)

    def batches(shard):
        torch.manual_seed(0)  # mixing draws from the global generator, as in training
        made = Batches(split, 16, torch.device("cpu"), preprocess, shuffle=True, augment=augment,
                       drop_last=True, seed=3, num_classes=10, shard=shard)  # fmt: skip
        return list(made.epoch(skip=1))

    whole = batches((0, 1))
    parts = [batches((rank, 2)) for rank in range(2)]
    assert len(whole) == 3
    for i, (images, labels) in enumerate(whole):
        assert torch.equal(images, torch.cat([parts[0][i][0], parts[1][i][0]]))
        assert torch.equal(labels, torch.cat([parts[0][i][1], parts[1][i][1]]))
        assert parts[0][i][0].shape[0] == 8


def test_one_ctrl_c_that_reaches_a_worker_twice_counts_once():
    with GracefulStop(repeat_window=5.0) as stop:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # torchrun's agent forwarding the same Ctrl-C
        assert stop()
    with GracefulStop() as stop, pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)


def test_without_nproc_leaves_the_rest_of_the_command_line():
    assert without_nproc(["--epochs", "3", "--nproc", "2", "--lr", "0.1"]) == ["--epochs", "3", "--lr", "0.1"]
    assert without_nproc(["--nproc=4", "--seed", "1"]) == ["--seed", "1"]


@pytest.mark.slow  # 10-11 s of real processes; two processes training one run stay in CI
def test_finetune_trains_a_timm_vit_on_two_processes(tmp_path):
    import timm
    from timm_helpers import finetune

    if not timm.is_model("test_vit"):
        pytest.skip("this timm has no test_vit; a newer timm has")
    data = write_mnist(tmp_path / "data", train=96, test=16)
    options = ["--model", "test_vit", "--pretrained", "none", "--img-size", 32, "--patch-size", 8]
    child = vitcli("finetune", "--data-dir", data, *options, "--subset", 64, "--val-size", 16, "--epochs", 1,
                   "--batch-size", 16, "--device", "cpu", "--out", tmp_path / "runs", "--name", "two",
                   "--nproc", 2, stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    _, stderr = child.communicate(timeout=300)
    assert child.returncode == 0, stderr
    one = finetune(tmp_path, data, *options, "--subset", 64, "--name", "one")
    assert one.exit_code == 0, one.output
    [a], [b] = epochs(tmp_path / "runs" / "one"), epochs(tmp_path / "runs" / "two")
    assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    assert a["val_accuracy"] == pytest.approx(b["val_accuracy"])


@pytest.mark.slow  # 10-11 s of real processes; two processes training one run stay in CI
def test_two_machines_join_through_torchruns_rendezvous(tmp_path):
    """docs/scaling.md's several-machine command, with both 'machines' on this one: two torchrun commands
    meet at a c10d endpoint and train the model of one process."""
    import socket

    data = write_mnist(tmp_path / "data", train=400, test=100)
    out = tmp_path / "runs"
    with socket.socket() as free:
        free.bind(("localhost", 0))
        port = free.getsockname()[1]
    torchrun = ["-m", "torch.distributed.run", "--nnodes", 2, "--nproc-per-node", 1, "--rdzv-backend", "c10d",
                "--rdzv-endpoint", f"localhost:{port}", "--rdzv-id", "test"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    command = [
        *torchrun,
        "-m",
        "vitcli",
        "train",
        "--data-dir",
        data,
        *SETTINGS,
        "--out",
        out,
        "--name",
        "nodes",
    ]
    nodes = [
        subprocess.Popen(
            [sys.executable, *map(str, command)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]
    for node in nodes:
        _, stderr = node.communicate(timeout=300)
        assert node.returncode == 0, stderr
    one = run("train", "--data-dir", data, *SETTINGS, "--out", out, "--name", "one")
    assert one.exit_code == 0, one.output
    assert_same_model(out / "one", out / "nodes")


def test_each_rank_draws_its_own_dropout_and_leaves_the_shared_generator_alone():
    """Mixup draws from the global generator, which must stay the same on every rank; dropout must not
    draw the same masks on every rank."""
    from vitcli.runtime.distributed import own_draws
    from vitcli.runtime.ranks import Ranks

    dropout, ones, cpu = torch.nn.Dropout(0.5).train(), torch.ones(1000), torch.device("cpu")
    torch.manual_seed(0)
    shared = torch.get_rng_state()
    masks = []
    for rank in range(2):
        with own_draws(seed=0, epoch=1, step=3, device=cpu, ranks=Ranks(rank, 2)):
            masks.append(dropout(ones))
        assert torch.equal(torch.get_rng_state(), shared)
    assert not torch.equal(masks[0], masks[1])
    with own_draws(seed=0, epoch=1, step=3, device=cpu, ranks=Ranks(1, 2)):  # rank 1 again: the same draws
        assert torch.equal(dropout(ones), masks[1])
    with own_draws(seed=0, epoch=1, step=3, device=cpu, ranks=Ranks()):  # one process: the global draws
        dropout(ones)
    assert not torch.equal(torch.get_rng_state(), shared)
