"""The CPU threads a run chooses and follows (runtime/threads.py), and --precision.

The busy machine is real: a second process that spins on one core. The thread-count rule itself is
tested on readings given to it, since a test runner's other workers make the real load of a shared
machine anything."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from cli_helpers import plain_text, run, train

from vitcli.runtime import threads as threads_module
from vitcli.runtime.devices import native_bf16, resolve_precision
from vitcli.runtime.threads import OLD, LoadMeter, Threads, free_threads
from vitcli.training.checkpoint import read_metadata
from vitcli.training.state import load_state

TWO_CORES = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs two cores"
)


def test_one_thread_per_free_core_at_most_the_ceiling_and_at_least_one():
    assert free_threads(top=2, available=2, others=0.0) == 2
    assert free_threads(top=2, available=2, others=0.3) == 2  # a moment's work is not a taken core
    assert free_threads(top=2, available=2, others=0.6) == 1
    assert free_threads(top=2, available=2, others=2.0) == 1  # never none
    assert free_threads(top=4, available=16, others=8.0) == 4  # another rank's 8 leave 8: the share wins
    assert free_threads(top=8, available=16, others=12.4) == 4
    assert free_threads(top=2, available=2, others=None) == 2  # no /proc/stat: taken as idle


class Readings(LoadMeter):
    """Given loads instead of /proc/stat's, for the rule that follows them."""

    def __init__(self, loads):
        self.loads = iter(loads)

    def others(self):
        return next(self.loads)


def test_a_chosen_count_follows_the_load_after_two_looks_that_agree(monkeypatch):
    monkeypatch.setattr(threads_module, "CHECK_EVERY_S", 0.0)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(threads_module, "cores", lambda: 2)
    threads = Threads(2, None, top=2, meter=Readings([1.0, 0.2, 1.0, 1.0, 1.0, 0.1, 0.0]))
    assert threads.check() is None  # one busy look: a moment
    assert threads.check() is None  # and the load went: nothing changes
    assert threads.check() is None
    line = threads.check()  # two busy looks in a row
    assert line.startswith("the CPU got busy") and "1 thread now" in line and threads.count == 1
    assert torch.get_num_threads() == 1
    assert threads.check() is None
    assert threads.check() is None
    assert "freer" in threads.check() and threads.count == 2 and torch.get_num_threads() == 2
    assert threads.counts == [2, 1, 2]
    assert threads.describe() == "2 then 1 then 2 (auto)"


def test_a_given_count_never_follows_the_load(monkeypatch):
    threads = Threads.start(1)
    assert not threads.following and threads.check() is None
    assert torch.get_num_threads() == 1 and threads.describe() == "1 (--threads)"
    old = Threads.start(OLD)
    assert old.count == threads_module._TORCH_DEFAULT and old.describe().endswith("(--threads 0)")


@TWO_CORES
def test_beside_a_busy_core_a_run_chooses_one_thread_and_says_so(tmp_path):
    """A real busy loop on core 0, and a real vitcli in another process that may use both cores."""
    core = sorted(os.sched_getaffinity(0))[0]
    spin = f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"
    loop = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.5)
        script = textwrap.dedent(
            """
            from vitcli.runtime.threads import Threads, LoadMeter
            import time, torch
            meter = LoadMeter(); time.sleep(0.5); others = meter.others()
            threads = Threads.start(None)
            print(others, threads.count, torch.get_num_threads(), threads.note)
            """
        )
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
        )
    finally:
        loop.kill()
        loop.wait()
    others, count, torch_threads, note = done.stdout.split(maxsplit=3)
    assert float(others) >= 0.8  # the loop's core, seen from the other process
    assert (int(count), int(torch_threads)) == (1, 1)
    assert note.startswith("the CPU is busy: other programs use") and "--threads N" in note


def test_threads_given_are_recorded_in_the_run_and_shown(tmp_path, mnist_dir):
    done = train(tmp_path, mnist_dir, "--threads", 1, "--name", "one")
    assert done.exit_code == 0, done.output
    run_dir = tmp_path / "runs" / "one"
    assert "threads = 1" in (run_dir / "config.toml").read_text()
    assert "1 (--threads)" in done.output
    assert load_state(run_dir / "state.safetensors").threads == 1
    metrics = json.loads(read_metadata(run_dir / "model.safetensors")["metrics"])
    assert metrics["threads"] == [1] and metrics["precision"] == "fp32"
    facts = json.loads((run_dir / "provenance.json").read_text())
    assert facts["threads"] == 1 and facts["precision"] == "fp32"


def test_a_chosen_run_resumes_on_the_threads_it_stopped_on(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    threads = Threads.start(None, resumed_on=1)
    assert threads.count == 1 and torch.get_num_threads() == 1 and threads.following and threads.note is None


def test_bf16_on_the_cpu_trains_under_autocast_and_is_recorded(tmp_path, mnist_dir):
    done = train(tmp_path, mnist_dir, "--precision", "bf16", "--name", "bf16")
    assert done.exit_code == 0, done.output
    run_dir = tmp_path / "runs" / "bf16"
    assert json.loads(read_metadata(run_dir / "model.safetensors")["metrics"])["precision"] == "bf16"
    assert json.loads((run_dir / "provenance.json").read_text())["precision"] == "bf16-mixed"
    assert "bf16 (autocast)" in done.output


def test_auto_precision_is_bf16_on_cuda_and_on_the_cpu_only_where_it_pays():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert resolve_precision("auto", cuda, "vit") == "bf16"
    assert resolve_precision("auto", cpu, "vit") == "fp32"  # the casts cost more than the small products save
    assert resolve_precision("auto", cpu, "cnn") == ("bf16" if native_bf16() else "fp32")
    assert resolve_precision("fp32", cuda, "cnn") == "fp32"
    assert resolve_precision("bf16", cpu, "vit") == "bf16"


@pytest.mark.parametrize(
    "args, words",
    [
        (["--threads", "-1"], "--threads must be a number of threads, or 0 for PyTorch's default, got -1"),
        (["--precision", "fp16"], "--precision must be one of auto, fp32, bf16, got 'fp16'"),
    ],
)
def test_bad_threads_or_precision_is_one_line(tmp_path, mnist_dir, args, words):
    done = run("train", "--data-dir", mnist_dir, "--out", tmp_path / "runs", *args)
    assert done.exit_code != 0
    assert words in plain_text(done.output)
    assert "Traceback" not in done.output and not (tmp_path / "runs").exists()
