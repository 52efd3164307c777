"""Ctrl-C of the commands that are not trainings, as a user's hands give it: twice, 0.1 s apart, at any
moment. Each ends with one line that fits what it did and an exit code that matches what was written: 130
and no file (or a whole one it did not get to announce), or 0 after "wrote"; never a traceback, an
"Exception ignored", a message about epochs, or death by SIGINT (exit -2)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from cli_helpers import train

REPO = Path(__file__).resolve().parents[1]
STOPPED = "interrupted: stopped at once; no file was half-written (each is written whole or not at all)"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from fakedata import write_mnist

    root = tmp_path_factory.mktemp("ctrl-c")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VITCLI_CACHE_DIR", str(root / "cache"))
        data = write_mnist(root / "data", train=96, test=16)
        done = train(root, data, "--embed-dim", 8, "--depth", 1, "--val-size", 16, "--name", "v")
        assert done.exit_code == 0, done.output
    return root


def twice(command: list[str], after: float, env: dict) -> subprocess.Popen:
    """Start `vitcli COMMAND`; a thread sends SIGINT `after` s later and again 0.1 s after that."""
    import threading

    process = subprocess.Popen(
        [sys.executable, "-m", "vitcli", *map(str, command)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )

    def press():
        time.sleep(after)
        for _ in range(2):
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
            time.sleep(0.1)

    threading.Thread(target=press, daemon=True).start()
    return process


def test_two_ctrl_c_at_any_moment_of_export_and_inspect_end_in_one_fitting_line(trained, tmp_path):
    env = {**os.environ, "VITCLI_CACHE_DIR": str(trained / "cache"), "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    run_dir = trained / "runs" / "v"
    # (the output, the process): while Typer and rich load, while torch loads, while the work runs. Not
    # earlier: in the first tenths of a second Python itself starts, and no code of vitcli runs yet.
    tries = []
    for i, after in enumerate((0.5, 1.2, 2.5, 4.0)):
        out = tmp_path / f"e{i}.onnx"
        tries.append((out, twice(["export", run_dir, "--format", "onnx", "--out", out], after, env)))
    for i, after in enumerate((0.8, 3.0)):
        out = tmp_path / f"i{i}"
        command = ["inspect", run_dir, "--data-dir", trained / "data", "--images", 8, "--out", out]
        tries.append((out, twice(command, after, env)))
    for out, process in tries:
        stdout, stderr = process.communicate(timeout=240)
        said = (process.returncode, stdout[-300:], stderr)
        assert process.returncode in (0, 130), said
        assert "Traceback" not in stderr and "Exception ignored" not in stderr and "epoch" not in stderr, said
        if process.returncode == 130:
            assert stderr.strip() == STOPPED and "wrote" not in stdout, said
        else:
            assert stderr == "" and out.exists(), said
        if out.suffix == ".onnx" and out.exists():
            import onnx

            assert onnx.load(str(out)).metadata_props  # whole
    assert not list(tmp_path.rglob(".*.tmp"))


DESTRUCTOR = textwrap.dedent(
    """
    import os, sys, threading, time
    from vitcli.runtime.interrupt import StoppedAtOnce, ctrl_c_stops_at_once

    class Slow:
        def __del__(self):  # Ctrl-C arrives in here, where Python cannot raise it
            threading.Timer(0.05, os.kill, (os.getpid(), 2)).start()
            time.sleep(0.3)

    ctrl_c_stops_at_once()
    try:
        Slow()  # gone at once: its __del__ runs now
        time.sleep(5)
    except StoppedAtOnce:
        print("stopped after the destructor")
        sys.exit(130)
    print("ran on")
    """
)


def test_a_ctrl_c_that_lands_in_a_destructor_still_stops_the_command():
    """Python cannot raise out of __del__: it prints "Exception ignored" and runs on, so the Ctrl-C would be
    lost (and the command end with 0 after the user stopped it). It is delivered again, to the code after."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-c", DESTRUCTOR], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 130 and done.stdout == "stopped after the destructor\n", done
    assert "Exception ignored" not in done.stderr and done.stderr == ""


IMPORT = textwrap.dedent(
    """
    import os, sys, time
    from vitcli.runtime.interrupt import StoppedAtOnce, ctrl_c_stops_at_once

    ctrl_c_stops_at_once()
    try:
        import slow_module  # sends itself a Ctrl-C half-way through its import
        time.sleep(5)
    except StoppedAtOnce:
        whole = sys.modules.get("slow_module")
        print("stopped after the import" if getattr(whole, "DONE", False) else "stopped inside the import")
        sys.exit(130)
    """
)


def test_a_ctrl_c_that_lands_in_an_import_waits_for_the_import_to_end(tmp_path):
    """Raised inside an import, a Ctrl-C can leave a C extension half-initialised (numpy then refuses to
    load again: "cannot load module more than once per process", seen under `vitcli report`)."""
    (tmp_path / "slow_module.py").write_text(
        "import os, time\nos.kill(os.getpid(), 2)\ntime.sleep(0.3)\nDONE = True\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "src")])}
    done = subprocess.run([sys.executable, "-c", IMPORT], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 130 and done.stdout == "stopped after the import\n", done


MANGLED = textwrap.dedent(
    """
    import os, sys, time
    import typer
    from vitcli.cli.common import user_errors
    from vitcli.runtime.interrupt import ctrl_c_stops_at_once

    ctrl_c_stops_at_once()
    try:
        with user_errors():
            try:
                os.kill(os.getpid(), 2)
                time.sleep(5)
            except KeyboardInterrupt:  # what pybind11 makes of a Ctrl-C inside matplotlib's transform
                raise TypeError("affine_transform(): incompatible function arguments") from None
    except typer.Exit as e:
        sys.exit(e.exit_code)
    """
)


def test_a_ctrl_c_that_a_c_extension_turns_into_another_error_still_ends_as_a_ctrl_c():
    """Seen under a loaded `vitcli report`: the Ctrl-C reached matplotlib's C++ mid-call and came out as a
    TypeError with a traceback and exit 1."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-c", MANGLED], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 130 and done.stderr.strip() == STOPPED, done


LEFT_OVER = textwrap.dedent(
    """
    import os, signal, sys
    from typer.testing import CliRunner
    from vitcli.cli import app
    from vitcli.runtime.interrupt import GracefulStop, StoppedAtOnce

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a pytest-xdist worker starts
    try:
        with GracefulStop():
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the second: stop at once
    except StoppedAtOnce:
        pass
    open(sys.argv[1], "w").close()
    done = CliRunner().invoke(app, ["info", "--data-dir", sys.argv[1]])  # a file: one error line
    print(done.exit_code, done.output.strip().splitlines()[-1])
    """
)


def test_a_ctrl_c_met_by_an_earlier_command_is_forgotten_where_sigint_was_ignored_from_the_start(tmp_path):
    """A test runner's worker that ignores SIGINT from its start (pytest-xdist's) and ran a test that
    stopped at once: a later command's own error is its own line and exit 1, not "stopped at once"."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-c", LEFT_OVER, str(tmp_path / "file")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    code, line = done.stdout.split(" ", 1)
    assert code == "1" and "is a file" in line and "stopped" not in line, done.stdout
