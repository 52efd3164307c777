"""Ctrl-C of a run that Python code started (a test, a script): once the run has saved its state, the
caller gets a KeyboardInterrupt (RunInterrupted), so a pytest session ends at the first press instead of
recording one failed test and going on to the next. SIGTERM still ends a run with a plain RunStopped. The
command line's own Ctrl-C (one line, exit 130) is tests/test_resume.py's."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from fakedata import write_mnist
from run_helpers import REPO

from vitcli.runtime.interrupt import RunInterrupted, RunStopped
from vitcli.settings.config import dump_toml
from vitcli.training.resume import resume_point

EPOCHS = 300  # far more than a test waits for: the run ends only by the signal


def long_run(data_dir, out) -> dict:
    """A tiny ViT on fake MNIST that trains for EPOCHS epochs into out/long, as load_config's sections."""
    return {
        "model": {"embed_dim": 8, "heads": 2, "depth": 1},
        "data": {"data_dir": str(data_dir), "val_size": 100},
        "train": {"epochs": EPOCHS, "batch_size": 32, "device": "cpu"},
        "run": {"out": str(out), "name": "long"},
    }


def environment() -> dict:
    # tests/ too: a session's test may train through the command-line helper, as most of this suite does
    paths = os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])
    return {**os.environ, "PYTHONPATH": paths, "OMP_NUM_THREADS": "1"}


def signal_once_training(process: subprocess.Popen, run_dir, signum: int) -> None:
    """Send `signum` once the run has written its first state: it is then inside its GracefulStop."""
    deadline = time.monotonic() + 120
    while not (run_dir / "state.safetensors").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run wrote no state"
        time.sleep(0.05)
    process.send_signal(signum)


def assert_saved_and_resumable(run_dir) -> None:
    """Stopped by the signal, not trained to its end, and with a state that a resume accepts."""
    assert 1 <= len((run_dir / "metrics.jsonl").read_text().splitlines()) < EPOCHS
    _, snapshot = resume_point(run_dir, {})  # a ConfigError if there were nothing to resume
    assert 1 <= snapshot.epoch <= EPOCHS
    assert not list(run_dir.glob(".*.tmp"))


SESSION = """
from pathlib import Path

from vitcli.settings.config import load_config
from vitcli.training.run import train_run

MARKERS = Path({markers!r})


def test_trains_long():
    {trains}


def test_after_it():
    (MARKERS / "after_it").touch()


def test_last():
    (MARKERS / "last").touch()
"""


# The Python API, and the command line in this process through tests/cli_helpers.py (which raises the
# Ctrl-C that vitcli turned into exit 130 again).
TRAINS = {
    "train_run": "train_run(load_config(None, {sections!r}))",
    "cli_helpers": "__import__('cli_helpers').run('train', '--config', {config!r})",
}


@pytest.mark.parametrize("trains", TRAINS)
def test_one_ctrl_c_in_a_run_stops_the_whole_pytest_session(tmp_path, trains):
    """A real pytest session that trains in its first test, and one real SIGINT: pytest stops with exit 2
    (interrupted), the tests after it never run, and the run has saved its state."""
    data, markers, suite = write_mnist(tmp_path / "data", test=100), tmp_path / "markers", tmp_path / "suite"
    markers.mkdir()
    suite.mkdir()
    sections = long_run(data, tmp_path / "runs")
    config = tmp_path / "long.toml"
    config.write_text(dump_toml(sections))
    body = TRAINS[trains].format(sections=sections, config=str(config))
    (suite / "test_session.py").write_text(SESSION.format(markers=str(markers), trains=body))
    command = [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-o", "addopts="]
    command += ["-q", str(suite)]
    process = subprocess.Popen(
        command, cwd=suite, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        signal_once_training(process, tmp_path / "runs" / "long", signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    run_dir = tmp_path / "runs" / "long"
    assert process.returncode == 2, output  # pytest's ExitCode.INTERRUPTED, not 1 for a failed test
    assert not list(markers.iterdir()), output  # neither later test ran
    # What pytest prints for the KeyboardInterrupt that ended it: the run's line saying how to resume.
    said = " ".join(output.split())
    assert f"the state of {run_dir} is saved; go on with: vitcli train --resume" in said
    assert "1 failed" not in said and "passed" not in said, output
    assert_saved_and_resumable(run_dir)


SCRIPT = """
import vitcli
from vitcli.runtime.interrupt import RunStopped

try:
    vitcli.train(**{sections!r})
except KeyboardInterrupt:
    print("KeyboardInterrupt", flush=True)
    raise
except RunStopped:
    print("RunStopped", flush=True)
    raise
"""


@pytest.mark.parametrize(
    ("signum", "caught", "raised"),
    [
        # the session test above shows the Ctrl-C of a run from Python; this one adds a script's exit status
        pytest.param(signal.SIGINT, "KeyboardInterrupt", "RunInterrupted", marks=pytest.mark.slow),
        (signal.SIGTERM, "RunStopped", "RunStopped"),
    ],
    ids=["ctrl-c", "sigterm"],
)
def test_a_script_that_trains_gets_a_keyboard_interrupt_for_ctrl_c_and_run_stopped_for_sigterm(
    tmp_path, signum, caught, raised
):
    """`vitcli.train` in a script: after Ctrl-C the run's state is saved and a KeyboardInterrupt ends the
    script; after SIGTERM (a scheduler's stop, not the user's Ctrl-C) a RunStopped that is not one."""
    sections = long_run(write_mnist(tmp_path / "data", test=100), tmp_path / "runs")
    script = textwrap.dedent(SCRIPT).format(sections=sections)
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        signal_once_training(process, tmp_path / "runs" / "long", signum)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    run_dir = tmp_path / "runs" / "long"
    assert stdout == f"{caught}\n", (stdout, stderr)
    # Uncaught: Python's traceback, ending with the run's line; exit 1 (a subclass, not Python's own
    # KeyboardInterrupt, which would end the process by SIGINT: runtime/interrupt.py says why).
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"vitcli.runtime.interrupt.{raised}: the state of {run_dir} is saved"), stderr
    assert process.returncode == 1, stderr
    assert_saved_and_resumable(run_dir)


def test_a_stopped_runs_error_keeps_its_kind_across_a_process_boundary():
    """A sweep's worker sends its run's error to the sweep's process pickled (concurrent.futures)."""
    said = "the state of runs/x is saved; go on with: vitcli train --resume runs/x"
    for error in (RunInterrupted(said), RunStopped(said)):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and str(copy) == said
    assert isinstance(RunInterrupted(said), KeyboardInterrupt) and isinstance(RunInterrupted(said), Exception)
    assert not isinstance(RunStopped(said), KeyboardInterrupt)
