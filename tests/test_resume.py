"""Never lose work: per-epoch state, exact resume, Ctrl-C and kill -9."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from cli_helpers import run
from fakedata import write_mnist
from run_helpers import LEVERS, REPO, assert_same_tensors, settings, single_thread, tensors, with_levers

from vitcli.data import load_splits
from vitcli.data.batches import Augmentation
from vitcli.data.preprocessing import Preprocessing
from vitcli.models.build import build_model
from vitcli.settings.config import load_config
from vitcli.training.engine import fit
from vitcli.training.run import resume_run, train_run
from vitcli.training.state import load_state, save_state

VARIANTS = {"model": {"tokenizer": "spt", "lsa": True, "pool": "seq"}}  # the small-data ViT parts


@pytest.mark.parametrize("levers", [{}, LEVERS, VARIANTS], ids=["plain", "every-lever", "spt-lsa-seq"])
def test_a_run_stopped_mid_epoch_resumes_to_the_same_weights_as_one_that_never_stopped(
    tmp_path, mnist_dir, levers
):
    """In process: fit's stop() ends the run after step 5 of epoch 2, the snapshot goes through the state
    file, and the resumed run ends with every tensor equal to an uninterrupted run's; with every
    small-data lever on too (RandAugment, erasing, mixing, drop path, the EMA, clipping), and with
    shifted patches, locality self-attention and sequence pooling."""
    cfg = load_config(None, with_levers(settings(mnist_dir, tmp_path), levers))
    splits = load_splits(cfg.data)
    preprocess = Preprocessing(splits.stats.mean, splits.stats.std).on("cpu")

    def train(start=None, stop=None, on_snapshot=None):
        torch.manual_seed(0)
        built = build_model(cfg.model,
            splits.info, splits.stats, weight_decay=0.05, emit=print, drop_path=cfg.train.drop_path
        )
        result = fit(
            built.module,
            splits,
            cfg.train,
            torch.device("cpu"),
            preprocess,
            augment=Augmentation.of(cfg.data, splits.info.family),
            start=start,
            on_snapshot=on_snapshot,
            stop=stop,
        )
        return built.module, result

    whole, whole_result = train()
    steps = []
    snapshots = []
    # stop() is asked after every step and at the end of each epoch: 15 steps + 1, then step 5 of epoch 2
    stopped, result = train(
        stop=lambda: steps.append(1) or len(steps) == 16 + 5,
        on_snapshot=lambda s, improved: snapshots.append(s),
    )
    assert result.stopped and snapshots[-1].epoch == 2 and snapshots[-1].totals.steps == 5
    save_state(tmp_path / "state.safetensors", snapshots[-1])
    resumed, resumed_result = train(start=load_state(tmp_path / "state.safetensors"))
    assert_same_tensors(resumed.state_dict(), whole.state_dict())
    assert [m.train_loss for m in resumed_result.history] == [m.train_loss for m in whole_result.history]
    assert resumed_result.best_epoch == whole_result.best_epoch
    assert resumed_result.weights == whole_result.weights


def test_kill_9_mid_epoch_then_resume_gives_every_tensor_of_an_uninterrupted_run(tmp_path):
    data = write_mnist(tmp_path / "data", train=3000, test=100)
    common = [
        "--data-dir",
        data,
        "--epochs",
        4,
        "--batch-size",
        16,
        "--embed-dim",
        32,
        "--depth",
        3,
        "--heads",
        2,
        "--dropout",
        0.1,
        "--val-size",
        100,
        "--device",
        "cpu",
        "--out",
        tmp_path / "runs",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "vitcli", "train", *map(str, common), "--name", "killed"]
    child = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = tmp_path / "runs" / "killed" / "state.safetensors"
    deadline = time.monotonic() + 120
    while not state.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # into the second epoch
    child.send_signal(signal.SIGKILL)
    child.wait()
    lines = (tmp_path / "runs" / "killed" / "metrics.jsonl").read_text().splitlines()
    if len(lines) >= 4:
        pytest.skip("the run finished before it could be killed (a very fast machine)")
    assert run("eval", tmp_path / "runs" / "killed", "--json").exit_code == 0  # the best epoch so far

    resumed = run("train", "--resume", tmp_path / "runs" / "killed")
    assert resumed.exit_code == 0, resumed.output
    whole = run("train", *common, "--name", "whole")
    assert whole.exit_code == 0, whole.output
    for name in (
        "model.safetensors",
        "last.safetensors",
        "state.safetensors",
    ):  # optimiser and generators too
        assert_same_tensors(
            tensors(tmp_path / "runs" / "killed" / name), tensors(tmp_path / "runs" / "whole" / name)
        )
    killed_lines = (tmp_path / "runs" / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in killed_lines] == [1, 2, 3, 4]


@pytest.mark.parametrize(
    "signals",
    [[signal.SIGINT], [signal.SIGTERM], [signal.SIGHUP], [signal.SIGINT, signal.SIGINT]],
    ids=["ctrl-c", "sigterm", "sighup", "ctrl-c twice"],
)
def test_ctrl_c_after_the_first_epoch_saves_the_state_says_how_to_resume_and_exits_130(tmp_path, signals):
    """Ctrl-C or SIGTERM: the step in hand finishes and the state is written; a second Ctrl-C stops at once,
    with the last finished epoch's state. Either way nothing is half-written and eval works."""
    data = write_mnist(tmp_path / "data", train=2000, test=100)
    run_dir = tmp_path / "runs" / "c"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    args = [
        sys.executable,
        "-m",
        "vitcli",
        "train",
        "--data-dir",
        str(data),
        "--epochs",
        "6",
        "--batch-size",
        "16",
        "--depth",
        "3",
        "--val-size",
        "100",
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "runs"),
        "--name",
        "c",
    ]
    child = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (
        not (run_dir / "state.safetensors").exists() and child.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.02)
    for sig in signals:
        child.send_signal(sig)
        time.sleep(0.001)
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 130, stderr
    said = " ".join(stderr.split())
    assert "interrupted" in said
    assert (
        f"vitcli train --resume {run_dir}" in said or "the state of the last finished epoch is kept" in said
    )
    assert "Traceback" not in stderr and not list(run_dir.glob(".*.tmp"))
    evaluated = run("eval", run_dir, "--json")
    assert evaluated.exit_code == 0 and json.loads(evaluated.output)["count"] == 100
    assert load_state(run_dir / "state.safetensors").epoch <= 6


STOPPED_IN_EVAL = """
import os, signal, sys
from vitcli.runtime.interrupt import GracefulStop, ctrl_c_stops_at_once
ctrl_c = "__import__('os').kill(__import__('os').getpid(), 2)"
try:
    if sys.argv[1] == "in a run":
        with GracefulStop():
            os.kill(os.getpid(), signal.SIGINT)  # the first: stop after the step in hand
            eval(ctrl_c)  # the second, in code from a string
    else:
        ctrl_c_stops_at_once()  # what vitcli's main() does
        eval(ctrl_c)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("where", ["in a run", "outside a run"])
def test_a_ctrl_c_inside_code_run_from_a_string_still_exits_130(tmp_path, where):
    """namedtuple (and imports that reach one) run code from a string; CPython marks a bare
    KeyboardInterrupt raised there as unhandled and `python -m` dies by SIGINT (-2) though it exits 130."""
    (tmp_path / "stopped_in_eval.py").write_text(STOPPED_IN_EVAL)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "src")])}
    command = [sys.executable, "-m", "stopped_in_eval", where]
    done = subprocess.run(command, env=env, capture_output=True, timeout=60)
    assert done.returncode == 130, done.stderr


def test_resume_refuses_options_that_change_the_run_and_lets_epochs_grow(tmp_path, mnist_dir):
    result = train_run(load_config(None, settings(mnist_dir, tmp_path, epochs=1)))
    refused = run("train", "--resume", result.run_dir, "--lr", 0.5)
    assert refused.exit_code == 1 and "--lr 0.5 would change it" in refused.stderr
    finished = run("train", "--resume", result.run_dir)
    assert finished.exit_code == 1 and "finished its 1 epochs" in finished.stderr
    longer = resume_run(result.run_dir, {"train": {"epochs": 2}})
    assert [m.epoch for m in longer.history] == [1, 2]
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]


def test_a_sweep_run_stopped_by_ctrl_c_resumes_from_its_last_epoch(tmp_path, mnist_dir):
    from vitcli.events import EpochMetrics, Status
    from vitcli.runtime.interrupt import RunStopped
    from vitcli.sweeps.execute import RunStarted, run_sweep
    from vitcli.sweeps.plan import plan_sweep

    options = {
        "depth": [1, 2],
        "epochs": [3],
        "data_dir": [str(mnist_dir)],
        "subset": [200],
        "device": ["cpu"],
    }
    plan = plan_sweep(options, out=tmp_path / "sweeps")

    current = []

    def ctrl_c_in_epoch_2_of_the_second_run(event):
        if isinstance(event, RunStarted):
            current.append(event.run.index)
        elif isinstance(event, EpochMetrics) and event.epoch == 2 and current[-1] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would: the run finishes its step and stops

    with pytest.raises(RunStopped):
        run_sweep(plan, on_event=ctrl_c_in_epoch_2_of_the_second_run)
    stopped_dir = plan.dir / plan.runs[1].config.run.name
    assert load_state(stopped_dir / "state.safetensors").epoch == 3  # epochs 1 and 2 are kept
    said = []
    rows = run_sweep(plan, on_event=lambda e: said.append(e.message) if isinstance(e, Status) else None)
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert any(m.startswith(f"resuming {stopped_dir} at epoch 3") for m in said)
    assert [json.loads(x)["epoch"] for x in (stopped_dir / "metrics.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
    ]


def test_ctrl_c_after_the_last_epoch_but_before_the_test_set_resumes_to_the_test_set(tmp_path, mnist_dir):
    from vitcli.events import EpochMetrics
    from vitcli.runtime.interrupt import RunStopped

    cfg = load_config(None, settings(mnist_dir, tmp_path, epochs=2))

    def ctrl_c_after_epoch_2(event):
        if isinstance(event, EpochMetrics) and event.epoch == 2:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(RunStopped):
        train_run(cfg, on_event=ctrl_c_after_epoch_2)
    [run_dir] = [p.parent for p in tmp_path.glob("*/config.toml")]
    result = resume_run(run_dir)
    assert [m.epoch for m in result.history] == [1, 2] and 0 <= result.test.accuracy <= 1


def test_finetune_resume_goes_on_with_a_timm_run(tmp_path):
    import timm
    from timm_helpers import finetune

    if not timm.is_model("test_vit"):
        pytest.skip("this timm has no test_vit; a newer timm has")
    data_dir = write_mnist(tmp_path / "data", train=96, test=16)
    first = finetune(tmp_path, data_dir, "--model", "test_vit", "--pretrained", "none", "--name", "t")
    assert first.exit_code == 0, first.output
    longer = run("finetune", "--resume", tmp_path / "runs" / "t", "--epochs", 2)
    assert longer.exit_code == 0, longer.output
    lines = (tmp_path / "runs" / "t" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    refused = run("finetune", "--resume", tmp_path / "runs" / "t", "--epochs", 3, "--freeze", "backbone")
    assert refused.exit_code == 1 and "--freeze backbone would change it" in refused.stderr


@pytest.fixture(autouse=True)
def one_thread():
    yield from single_thread()
