"""`vitcli sweep --executor slurm` when processes are lost: a job killed with kill -9 is a failed row that
says so, and the same command run again after the sweep's own process was killed attaches to the jobs
still running instead of submitting them again. Real processes: on this Slurm-less machine submitit runs
the jobs as local processes, the job id being its controller's pid and the run's process its child; a
stand-in `sacct` plays Slurm for the states only Slurm has."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli_helpers import run
from run_helpers import single_thread
from sweep_helpers import sweep

from vitcli.sweeps.plan import plan_sweep
from vitcli.sweeps.results import load_results
from vitcli.sweeps.slurm import JOB_IDS, SlurmOptions, attach, job_row, slurm_executor

KILLED = "'s process was killed (kill -9, or out of memory) before it wrote its result; log: "
RESUME = "; resume: run the same vitcli sweep command again"


@pytest.fixture(autouse=True)
def one_thread():
    yield from single_thread()


def said(result) -> str:
    """The output's words, without the line breaks the console wraps long lines with."""
    return " ".join(result.output.split())


def job_ids(sweep_dir: Path) -> list[str]:
    """The job ids the sweep saved, in the order it submitted them."""
    path = sweep_dir / "slurm" / JOB_IDS
    return [entry["job"] for entry in json.loads(path.read_text()).values()] if path.is_file() else []


def children(pid: str) -> list[int]:
    """The live child processes of `pid`: a local job's controller has one, the run's process."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError):  # it ended meanwhile
            continue
        if ppid == pid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def test_a_job_killed_with_kill_9_is_a_failed_row_saying_so_with_its_swept_values(tmp_path, mnist_dir):
    """The run's process of the first job is killed as it starts: its row is failed (kind job, so the
    same command runs it again), says it was killed and how to resume, and the summary names the run by
    its seed, though a seed is no column of the table."""
    sweep_dir, killed = tmp_path / "sweeps" / "killed", []

    def kill_the_first_jobs_process():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            ids = job_ids(sweep_dir)
            processes = children(ids[0]) if ids else []
            if processes:
                os.kill(processes[0], signal.SIGKILL)
                killed.append(ids[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_first_jobs_process, daemon=True)
    killer.start()
    args = ("--seed", 0, 1, "--name", "killed", "--executor", "slurm", "--max-parallel", 2)
    result = sweep(tmp_path, mnist_dir, *args)
    killer.join()
    assert result.exit_code == 0, result.output
    [job] = killed
    rows = load_results(sweep_dir)
    [failed] = [row for row in rows if row["status"] == "failed"]
    assert failed["failure"] == "job" and failed["values"] == {"seed": failed["index"] - 1}
    log = sweep_dir / "slurm" / f"{job}_0_log.err"
    assert failed["error"] == f"job {job}{KILLED}{log}{RESUME}"
    assert "state FINISHED" not in result.output and "no swept values" not in result.output
    assert f"failed seed={failed['values']['seed']}: job {job}{KILLED}" in said(result)


@pytest.mark.slow  # 25-40 s here: three start-ups importing torch and 2 x 12 epochs on 2 shared cores
def test_the_same_command_after_the_sweeps_process_was_killed_attaches_to_its_running_jobs(
    tmp_path, mnist_dir
):
    """While the first call waits, a second is refused by the sweep directory's lock. Once the first
    call's process is killed (kill -9: the jobs live on, as Slurm jobs do when the ssh session ends), the
    same command finds the jobs' ids, waits for them and records their rows, and submits nothing."""
    args = ["sweep", "--data-dir", mnist_dir, "--subset", 200, "--val-size", 60, "--epochs", 12]
    args += ["--batch-size", 32, "--device", "cpu", "--out", tmp_path / "sweeps", "--name", "attach"]
    args += ["--seed", 0, 1, "--executor", "slurm", "--max-parallel", 2]
    sweep_dir = tmp_path / "sweeps" / "attach"
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(
            [sys.executable, "-m", "vitcli", *map(str, args)], stdout=log, stderr=log, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while len(list(sweep_dir.glob("*/metrics.jsonl"))) < 2:  # both jobs train
            assert first.poll() is None, (tmp_path / "first.log").read_text()
            assert time.monotonic() < deadline, "the jobs did not start"
            time.sleep(0.1)
        ids = job_ids(sweep_dir)
        refused = run(*args)
        assert refused.exit_code == 1 and f"is in use by process {first.pid}" in said(refused)
        first.kill()  # the sweep's process alone: its jobs go on
        first.wait()
        again = run(*args)
    finally:
        if first.poll() is None:
            first.kill()
    assert again.exit_code == 0, again.output
    assert f"attached to 2 jobs still running or queued ({', '.join(ids)})" in said(again)
    assert "submitted" not in again.output
    assert len(list((sweep_dir / "slurm").glob("*_submitted.pkl"))) == 2  # no job submitted again
    rows = load_results(sweep_dir)
    assert [row["status"] for row in rows] == ["finished", "finished"]
    for row in rows:  # every epoch, trained by the jobs of the first call
        assert len((sweep_dir / row["run"] / "metrics.jsonl").read_text().splitlines()) == 12


def test_a_local_job_is_attached_to_while_its_controller_runs(tmp_path):
    """What the test above needs of real jobs, in CI: a local job's id is its controller's pid, and a
    process of that pid whose command line names the job folder is the controller still running (stand-in
    controllers here). Another process under the pid, none, or a zombie mean the job ended."""
    plan = plan_sweep({"seed": [0, 1, 2, 3]}, out=tmp_path, name="s")
    executor = slurm_executor(plan, SlurmOptions())
    if executor.cluster != "local":
        pytest.skip("Slurm here: its jobs are not local processes")
    folder, sleep = executor.folder, [sys.executable, "-c", "import time; time.sleep(60)"]
    named = [*sleep, str(folder)]  # as submitit's controller is named: python -m ... FOLDER
    live, other, zombie = (subprocess.Popen(command) for command in (named, sleep, named))
    gone = subprocess.Popen([sys.executable, "-c", "pass", str(folder)])
    gone.wait()
    zombie.kill()  # and not waited for: a zombie until the end of the test
    try:
        pids = [live.pid, other.pid, zombie.pid, gone.pid]
        saved = {run.key: {"job": str(pid), "cluster": "local"} for run, pid in zip(plan.runs, pids)}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / JOB_IDS).write_text(json.dumps(saved))
        time.sleep(0.2)  # the zombie's death
        [(run, job)] = attach(executor, plan.runs)
        assert run.index == 1 and job.job_id == str(live.pid) and not job.done()
        live.kill()
        live.wait()
        assert job.done()
        assert job_row(plan, run, job, "local")["error"] == (
            f"job {live.pid}{KILLED}{folder / f'{live.pid}_0_log.err'}{RESUME}"
        )
    finally:
        for process in (live, other, zombie):
            process.kill()
            process.wait()


def test_slurms_states_decide_what_is_attached_to_and_what_a_lost_job_says(tmp_path, monkeypatch):
    """A stand-in `srun` makes the executor Slurm's, a stand-in `sacct` answers the jobs' states."""
    import submitit

    (tmp_path / "bin").mkdir()
    lines = ["JobID|State|NodeList", "100_0|RUNNING|n1", "100_1|PENDING|None assigned"]
    lines += ["100_2|CANCELLED by 1000|n1", "100_3|TIMEOUT|n2", "100_4|FAILED|n1", "100_5|NODE_FAIL|n3"]
    for name, text in (("srun", "exit 1"), ("sacct", "cat <<'EOF'\n" + "\n".join(lines) + "\nEOF")):
        (tmp_path / "bin" / name).write_text(f"#!/bin/sh\n{text}\n")
        (tmp_path / "bin" / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(submitit.SlurmJob, "_results_timeout_s", 0)  # no result to wait for here
    plan = plan_sweep({"seed": list(range(8))}, out=tmp_path, name="s")
    executor = slurm_executor(plan, SlurmOptions())
    assert executor.cluster == "slurm"
    saved = {run.key: {"job": f"100_{i}", "cluster": "slurm"} for i, run in enumerate(plan.runs[:7])}
    saved[plan.runs[7].key] = {"job": str(os.getpid()), "cluster": "local"}  # a pid is no Slurm id
    executor.folder.mkdir(parents=True, exist_ok=True)
    (executor.folder / JOB_IDS).write_text(json.dumps(saved))

    attached = attach(executor, plan.runs)
    # 100_6 is unknown to sacct: it is submitted again rather than waited for without end.
    assert [(run.index, job.job_id) for run, job in attached] == [(1, "100_0"), (2, "100_1")]
    errors = [
        job_row(plan, run, submitit.SlurmJob(executor.folder, f"100_{run.index - 1}"))["error"]
        for run in plan.runs[2:6]
    ]
    log = executor.folder / "{}_0_log.err"
    assert errors == [
        "job 100_2 was cancelled (scancel) before it wrote its result (Slurm state CANCELLED by 1000); "
        f"log: {str(log).format('100_2')}{RESUME}",
        "job 100_3 ran past its time limit (--timeout-min) before it wrote its result (Slurm state "
        f"TIMEOUT); log: {str(log).format('100_3')}{RESUME}",
        f"job 100_4{KILLED.replace('; log: ', ' (Slurm state FAILED); log: ')}{str(log).format('100_4')}"
        f"{RESUME}",
        "job 100_5 lost its node before it wrote its result (Slurm state NODE_FAIL); "
        f"log: {str(log).format('100_5')}{RESUME}",
    ]
