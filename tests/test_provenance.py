"""provenance.json: what a run records of how it was made (for `vitcli report`), and files written without
replacing one that is there."""

import json
import multiprocessing
import shutil
import subprocess

import pytest
from cli_helpers import run, train

from vitcli.runtime.files import atomic_write
from vitcli.training import provenance


def _facts(run_dir):
    return json.loads((run_dir / "provenance.json").read_text())


def test_a_run_records_its_command_versions_device_and_data_and_a_resume_adds_its_own(tmp_path, mnist_dir):
    first = train(tmp_path, mnist_dir, "--subset", 200, "--val-size", 50, "--name", "a")
    assert first.exit_code == 0, first.output
    again = train(tmp_path, mnist_dir, "--subset", 200, "--val-size", 50, "--name", "b")
    other = train(tmp_path, mnist_dir, "--subset", 100, "--val-size", 50, "--name", "c")
    assert again.exit_code == 0 and other.exit_code == 0
    a, b, c = (_facts(tmp_path / "runs" / name) for name in "abc")
    # In-process CLI runs see pytest's argv; the command is recorded as the process was started.
    assert a["command"] and a["versions"]["torch"] and a["versions"]["timm"] != "not installed"
    assert a["device"] == "cpu" and a["threads"] >= 1 and a["precision"] == "fp32" and a["processes"] == 1
    assert a["data"]["train"] == 200 and a["data"]["val"] == 50 and a["data"]["name"] == "mnist"
    assert a["data"]["sha256"] == b["data"]["sha256"]  # the same images: the same checksum
    assert c["data"]["sha256"] != a["data"]["sha256"] and c["data"]["train"] == 100
    resumed = run("train", "--resume", tmp_path / "runs" / "a", "--epochs", 2)
    assert resumed.exit_code == 0, resumed.output
    after = _facts(tmp_path / "runs" / "a")
    assert after["started"] == a["started"] and len(after["resumes"]) == 1
    assert after["resumes"][0]["device"] == "cpu"


def test_the_command_line_reads_as_the_user_typed_it(monkeypatch):
    monkeypatch.setattr("sys.argv", ["/home/u/.local/bin/vitcli", "train", "--name", "a b"])
    assert provenance.command_line() == "vitcli train --name 'a b'"
    monkeypatch.setattr("sys.argv", ["/x/src/vitcli/__main__.py", "eval", "runs/x"])
    assert provenance.command_line() == "vitcli eval runs/x"
    monkeypatch.setattr("sys.argv", ["study.py", "--fast"])
    assert provenance.command_line() == "study.py --fast"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_git_commit_of_the_working_tree_and_whether_it_had_changes(tmp_path):
    assert provenance.git_commit(tmp_path) is None  # not a working tree

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "study.txt").write_text("one\n")
    git("add", "study.txt")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one")
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert provenance.git_commit(tmp_path) == {"commit": head.stdout.strip(), "dirty": False}
    (tmp_path / "study.txt").write_text("two\n")
    assert provenance.git_commit(tmp_path)["dirty"] is True


def _write_no_replace(path, text, start, results):
    start.wait()
    try:
        atomic_write(path, lambda tmp: tmp.write_text(text), replace=False)
        results.put(text)
    except FileExistsError:
        results.put(None)


def test_writes_that_must_not_replace_a_file_let_exactly_one_of_two_processes_win(tmp_path):
    """Two real processes write the same new file at once: one writes it, the other is refused, and the
    file holds the winner's text whole."""
    context = multiprocessing.get_context("fork")  # the writers use no torch
    for attempt in range(3):
        path = tmp_path / f"out-{attempt}.html"
        start, results = context.Event(), context.Queue()
        workers = [
            context.Process(target=_write_no_replace, args=(path, f"writer {i}\n" * 1000, start, results))
            for i in range(2)
        ]
        for worker in workers:
            worker.start()
        start.set()
        for worker in workers:
            worker.join(60)
        outcomes = [results.get(timeout=10) for _ in workers]
        winners = [o for o in outcomes if o is not None]
        assert len(winners) == 1, outcomes
        assert path.read_text() == winners[0]
        assert not list(tmp_path.glob(".*.tmp"))
