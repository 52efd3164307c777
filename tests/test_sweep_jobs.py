"""`vitcli sweep --jobs N` (worker processes, sweep_jobs.py) and `--executor slurm` (submitit job arrays,
sweep_slurm.py; on this Slurm-less machine submitit's local processes): the same rows as one run at a
time, one writer, resume, Ctrl-C, jobs that fail, and the options' one-line errors."""

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
from run_helpers import single_thread
from sweep_helpers import sweep

from vitcli.errors import ConfigError
from vitcli.runtime.interrupt import RunStopped
from vitcli.sweeps.execute import RunEnded, resume_state, run_sweep
from vitcli.sweeps.jobs import job_gpus
from vitcli.sweeps.plan import plan_sweep
from vitcli.sweeps.results import ROW_FILE, load_results
from vitcli.sweeps.slurm import SlurmOptions, check_executor, run_on_slurm, slurm_executor

GRID = ("--embed-dim", 6, 8, "--heads", 2, 4)  # 4 runs, one of them invalid (4 heads do not divide 6)
SAME = ("status", "failure", "error", "key", "run", "index", "values", "axes", "config", "best_epoch")
CLOSE = ("val_accuracy", "test_accuracy", "test_loss", "parameters", "tokens")


@pytest.fixture(autouse=True)
def one_thread():
    # The reference sweeps run in this process with one thread, as each of 2 workers on 2 cores does.
    yield from single_thread()


def assert_same_rows(rows, reference):
    """The same runs with the same results; times, speeds and memory differ from process to process, and
    another thread count may round the floats differently."""
    assert [r["key"] for r in rows] == [r["key"] for r in reference]
    for row, ref in zip(rows, reference):
        assert {k: row.get(k) for k in SAME} == {k: ref.get(k) for k in SAME}
        for key in CLOSE:
            assert row.get(key) == pytest.approx(ref.get(key), abs=1e-4), key


def said(result) -> str:
    """The output's words, without the line breaks the console wraps long lines with."""
    return " ".join(result.output.split())


def options(mnist_dir, **swept):
    """sweep_helpers.sweep's settings, for plan_sweep."""
    shared = {"data_dir": [str(mnist_dir)], "subset": [200], "val_size": [60], "epochs": [1]}
    return {**shared, "batch_size": [32], "device": ["cpu"], **swept}


# --- --jobs N ----------------------------------------------------------------------------------------


def test_jobs_2_records_the_rows_of_jobs_1_in_plan_order_and_resumes(tmp_path, mnist_dir):
    one = sweep(tmp_path, mnist_dir, *GRID, "--name", "one")
    assert one.exit_code == 0, one.output
    two = sweep(tmp_path, mnist_dir, *GRID, "--name", "two", "--jobs", 2)
    assert two.exit_code == 0, two.output
    assert "4 runs, 4 to run" in said(two) and "[2/4] embed_dim=6 heads=4 failed (invalid)" in said(two)
    reference, rows = load_results(tmp_path / "sweeps" / "one"), load_results(tmp_path / "sweeps" / "two")
    assert [r["index"] for r in rows] == [1, 2, 3, 4]  # plan order, whatever order the runs ended in
    assert_same_rows(rows, reference)

    # A run recorded as failed for a reason that may pass is retried, its row in its place.
    path = tmp_path / "sweeps" / "two" / "results.jsonl"
    diverged = {**rows[0], "status": "failed", "failure": "diverged", "error": "the loss became nan"}
    path.write_text("".join(json.dumps(r) + "\n" for r in [rows[1], diverged, *rows[2:]]))
    retried = sweep(tmp_path, mnist_dir, *GRID, "--name", "two", "--jobs", 2)
    assert retried.exit_code == 0, retried.output
    assert "1 to run, 3 already recorded (finished or invalid) and skipped, 1 that failed" in said(retried)
    assert_same_rows(load_results(tmp_path / "sweeps" / "two"), reference)

    again = sweep(tmp_path, mnist_dir, *GRID, "--name", "two", "--jobs", 2)
    assert again.exit_code == 0 and "4 runs, 0 to run" in said(again) and "[1/4]" not in again.output
    assert_same_rows(load_results(tmp_path / "sweeps" / "two"), reference)


def test_a_stop_in_the_sweeps_process_keeps_the_finished_rows_once_each(tmp_path, mnist_dir):
    """Ctrl-C in this process (here: raised by the listener as the first row arrives) starts no more runs,
    records the rows of the runs that finish meanwhile and raises RunStopped; nothing is half-written and
    the next call runs only what is missing."""
    plan = plan_sweep(options(mnist_dir, seed=list(range(8))), out=tmp_path / "sweeps")
    ended = []

    def ctrl_c_at_the_first_row(event):
        if isinstance(event, RunEnded):
            ended.append(event.run.index)
            if len(ended) == 1:
                raise KeyboardInterrupt

    with pytest.raises(RunStopped, match="run the same command to resume"):
        run_sweep(plan, on_event=ctrl_c_at_the_first_row, jobs=2)
    recorded = load_results(plan.dir)
    # The first row and those of the runs the 2 workers had begun, each once: a worker may take its next
    # run in the moment before the stop reaches it, but the last runs were never started.
    assert 1 <= len(recorded) <= 5 and [r["index"] for r in recorded] == sorted(ended)
    assert not list(plan.dir.glob(".*.tmp"))
    state = resume_state(plan)
    assert state.skipped == len(recorded) and len(state.todo) == 8 - len(recorded)
    rows = run_sweep(plan)
    assert [r["index"] for r in rows] == list(range(1, 9)) and len(load_results(plan.dir)) == 8


def test_ctrl_c_in_a_terminal_stops_every_job_which_saves_its_state(tmp_path, mnist_dir):
    """The whole process group gets SIGINT, as from a terminal: the runs stop after their step and save
    their state, the sweep exits 130 with one line, and no row is recorded for a run that did not end."""
    command = [sys.executable, "-m", "vitcli", "sweep", "--data-dir", mnist_dir, "--subset", 200]
    command += ["--epochs", 300, "--device", "cpu", "--out", tmp_path / "sweeps", "--name", "long"]
    command += ["--depth", 1, 2, "--jobs", 2]
    process = subprocess.Popen(
        [str(c) for c in command], stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    sweep_dir = tmp_path / "sweeps" / "long"
    try:
        deadline = time.monotonic() + 120
        while len(list(sweep_dir.glob("*/metrics.jsonl"))) < 2 and process.poll() is None:
            assert time.monotonic() < deadline, "the runs did not start"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "run the same command to resume" in stderr
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1
    assert len(list(sweep_dir.glob("*/state.safetensors"))) == 2
    assert load_results(sweep_dir) == [] and not list(sweep_dir.rglob(".*.tmp"))


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the processes in /proc")
def test_kill_9_of_the_sweep_ends_its_workers_and_the_next_call_goes_on(tmp_path, mnist_dir):
    """kill -9 of the sweep's process: its busy worker stops its run after the step, saves its state and
    exits (well within the GRACE_S after which it would be killed), its idle one exits at once, and nothing
    of that call is left (its resource tracker included); the same command then resumes the stopped run."""
    args = ["sweep", "--data-dir", mnist_dir, "--subset", 200, "--val-size", 60, "--epochs", 12]
    args += ["--batch-size", 32, "--device", "cpu", "--out", tmp_path / "sweeps", "--name", "killed"]
    args += ["--embed-dim", 6, "--heads", 2, 4, "--jobs", 2]  # 4 heads are invalid: that worker idles
    with (tmp_path / "first.log").open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "vitcli", *map(str, args)], stdout=log, stderr=log, start_new_session=True
        )
    sweep_dir, workers = tmp_path / "sweeps" / "killed", []
    try:
        deadline = time.monotonic() + 120
        while not (
            len(workers) == 2
            and len(load_results(sweep_dir)) == 1  # the invalid run's row: one worker is idle
            and list(sweep_dir.glob("*/metrics.jsonl"))  # and the other trains
        ):
            assert process.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
            workers = workers_of(process.pid)
        process.kill()
        process.wait()
        deadline = time.monotonic() + 20
        while processes_in_group(process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_in_group(process.pid) == {}, "stray processes of the killed sweep"
    finally:
        for pid in processes_in_group(process.pid):
            os.kill(pid, signal.SIGKILL)
    [run_dir] = [path.parent for path in sweep_dir.glob("*/metrics.jsonl")]
    assert (run_dir / "state.safetensors").is_file() and not list(run_dir.glob(".*.tmp"))
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) < 12  # stopped, not trained to its end

    again = run(*args)
    assert again.exit_code == 0, again.output
    assert "1 to run, 1 already recorded" in said(again)
    assert [r["status"] for r in load_results(sweep_dir)] == ["finished", "failed"]  # plan order
    assert len(json.loads((run_dir / "provenance.json").read_text())["resumes"]) == 1
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 12
    assert processes_in_group(process.pid) == {}


# A worker as die_with_parent sees it: it holds the read end of the pipe, whose write end only the parent
# has; closing that end here is what the parent's death does.
ORPHAN = """
import os, time
from multiprocessing import Pipe
from vitcli.runtime.orphans import die_with_parent
alive, end = Pipe(duplex=False)
die_with_parent({parent}, alive)
end.close()
time.sleep(30)
print("still here")
"""


@pytest.mark.parametrize("parent", ["os.getppid()", "os.getppid() + 1_000_000"], ids=["dies", "gone"])
def test_an_idle_worker_exits_when_its_parent_dies_or_is_gone_before_it_watches(parent):
    started, code = time.monotonic(), ORPHAN.format(parent=parent)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1 and done.stdout == "" and done.stderr == ""
    assert time.monotonic() - started < 20


def workers_of(parent: int) -> list[int]:
    """The pids of the pool's workers among `parent`'s children (not its resource tracker)."""
    return [pid for pid, (ppid, _) in processes().items() if ppid == parent and "spawn_main" in cmdline(pid)]


def processes() -> dict[int, tuple[int, int]]:
    """Every live process here (zombies are dead): its parent's pid and its process group."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):  # it ended meanwhile
            continue
        if state != "Z":
            found[int(stat.parent.name)] = (int(ppid), int(group))
    return found


def processes_in_group(group: int) -> dict[int, str]:
    return {pid: cmdline(pid) for pid, (_, g) in processes().items() if g == group}


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    except OSError:
        return ""


# --- --executor slurm (submitit's local processes here) ----------------------------------------------


@pytest.mark.slow  # 11 s; submitit's local jobs stay in CI through the job that ends without its row
def test_slurm_jobs_record_the_rows_of_jobs_1_and_report_gathers_their_row_files(tmp_path, mnist_dir):
    one = sweep(tmp_path, mnist_dir, *GRID, "--name", "one")
    assert one.exit_code == 0, one.output
    jobs = sweep(tmp_path, mnist_dir, *GRID, "--name", "jobs", "--executor", "slurm", "--max-parallel", 2)
    assert jobs.exit_code == 0, jobs.output
    assert "no Slurm here: submitit runs the jobs as local processes" in said(jobs)
    assert "submitted 2 jobs" in jobs.output and "submitted 1 job " in jobs.output  # 3 jobs, 2 at a time
    sweep_dir = tmp_path / "sweeps" / "jobs"
    rows = load_results(sweep_dir)
    assert_same_rows(rows, load_results(tmp_path / "sweeps" / "one"))
    assert len(list((sweep_dir / "slurm").glob("*_log.err"))) == 3  # no job for the invalid run
    finished = [r for r in rows if r["status"] == "finished"]
    assert [json.loads((sweep_dir / r["run"] / ROW_FILE).read_text()) for r in finished] == finished

    # The sweep's process stopped before it recorded the jobs' rows: report finds them.
    (sweep_dir / "results.jsonl").write_text(json.dumps(rows[1]) + "\n")
    report = run("report", sweep_dir, "--json")
    assert report.exit_code == 0, report.output
    assert [r["index"] for r in json.loads(report.stdout)["runs"]] == [2, 1, 3, 4]
    again = sweep(tmp_path, mnist_dir, *GRID, "--name", "jobs", "--executor", "slurm")
    assert again.exit_code == 0, again.output
    assert "4 runs, 0 to run" in said(again) and "3 rows gathered from jobs' run directories" in said(again)
    assert load_results(sweep_dir) == rows


def test_a_job_that_ends_without_its_row_is_a_failed_row_naming_its_log(tmp_path, mnist_dir):
    plan = plan_sweep(options(mnist_dir, depth=[1, 2]), out=tmp_path / "sweeps")
    # The second job cannot write its row (a folder is in the way): it raises, as a crashing job would.
    (plan.dir / plan.runs[1].config.run.name / ROW_FILE).mkdir(parents=True)
    rows = run_on_slurm(plan, SlurmOptions(max_parallel=2), poll_s=0.2)
    assert [r["status"] for r in rows] == ["finished", "failed"]
    failed = rows[1]
    assert failed["failure"] == "job" and "raised vitcli.errors.OutputError: cannot write" in failed["error"]
    log = failed["error"].rsplit("log: ", 1)[1]
    assert log.endswith("_log.err") and os.path.isfile(log)
    assert [r["failure"] for r in load_results(plan.dir) if r["status"] == "failed"] == ["job"]
    assert [r.index for r in resume_state(plan).todo] == [2]  # retried by the next call


def test_the_slurm_options_become_the_arrays_sbatch_lines(tmp_path, monkeypatch):
    """As submitit would write them on a cluster: it looks for `srun`, so a stand-in on the PATH is Slurm."""
    from submitit.slurm.slurm import _make_sbatch_string

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    plan = plan_sweep({"depth": [1, 2]}, out=tmp_path, name="s")
    executor = slurm_executor(plan, SlurmOptions("gpu", gpus_per_job=2, max_parallel=3))
    assert executor.cluster == "slurm"
    parameters = executor._executor.parameters  # what submitit turns into #SBATCH lines
    sbatch = _make_sbatch_string(command="run", folder=executor.folder, map_count=4, **parameters)
    for line in (
        "--partition=gpu",
        "--gpus-per-node=2",
        "--array=0-3%3",
        "--time=1440",
        "--job-name=vitcli-s",
    ):
        assert f"#SBATCH {line}\n" in sbatch
    assert f"#SBATCH --error={plan.dir / 'slurm'}/%A_%a_0_log.err" in sbatch


# --- input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--jobs", "0"], "--jobs must be at least 1, got 0"),
        (["--partition", "gpu"], "--partition applies to --executor slurm only; add --executor slurm"),
        (
            ["--gpus-per-job", "1", "--max-parallel", "4"],
            "--gpus-per-job, --max-parallel apply to --executor",
        ),
        (["--executor", "slurm", "--jobs", "2"], "--jobs 2 is for --executor local"),
        (["--executor", "slurm", "--max-parallel", "0"], "--max-parallel must be at least 1, got 0"),
    ],
)
def test_bad_jobs_options_are_one_line_and_write_nothing(tmp_path, mnist_dir, args, message):
    result = run("sweep", "--data-dir", mnist_dir, "--out", tmp_path / "sweeps", "--depth", "1", "2", *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and result.stderr.startswith("error:")
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweeps").exists()


def test_slurm_without_submitit_says_how_to_install_it(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if it were not installed: import fails
    result = run("sweep", "--data-dir", mnist_dir, "--out", tmp_path / "sweeps", "--executor", "slurm")
    assert result.exit_code == 1 and not (tmp_path / "sweeps").exists()
    assert result.stderr.strip() == "error: --executor slurm needs submitit: pip install 'vitcli[slurm]'"


def test_jobs_on_gpus_get_one_each_of_the_visible_ones_and_slurm_jobs_ask_for_theirs(tmp_path, monkeypatch):
    """Without a GPU here: the CUDA count is what the check reads, so it is set."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    on_gpus = plan_sweep({"depth": [1, 2, 3], "device": ["cuda"]}, out=tmp_path)
    assert job_gpus(on_gpus, 2) == ["3", "5"] and job_gpus(on_gpus, 1) is None
    with pytest.raises(ConfigError, match="--jobs 3 is more than the 2 GPUs here .* use --jobs 2 or fewer"):
        job_gpus(on_gpus, 3)
    assert job_gpus(plan_sweep({"depth": [1, 2], "device": ["cpu"]}, out=tmp_path), 8) is None
    pinned = plan_sweep({"depth": [1, 2], "device": ["cuda:1"]}, out=tmp_path)
    with pytest.raises(ConfigError, match="--device cuda:1 names one; use --device cuda"):
        job_gpus(pinned, 2)
    # A Slurm job sees only the GPUs it asks for.
    with pytest.raises(ConfigError, match="--device cuda needs 1 GPU in each job; add --gpus-per-job 1"):
        check_executor(on_gpus, "slurm", 1, SlurmOptions())
    with pytest.raises(ConfigError, match="--device cuda:1 needs 2 GPUs in each job"):
        check_executor(pinned, "slurm", 1, SlurmOptions(gpus_per_job=1))
    check_executor(pinned, "slurm", 1, SlurmOptions(gpus_per_job=2))
