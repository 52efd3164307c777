"""What the command-line tests share: running a command, a quick training run, reading the parser's
messages."""

from typer.testing import CliRunner

from vitcli.cli import app
from vitcli.runtime.interrupt import RunInterrupted, StoppedAtOnce

runner = CliRunner()


def run(*args):
    """`vitcli ARGS...` in this process; arguments may be paths and numbers. A real Ctrl-C that stopped it
    (the command line says so and exits 130) is raised again as a KeyboardInterrupt, so that the user's
    Ctrl-C stops pytest at the first press instead of failing one test and going on to the next."""
    result = runner.invoke(app, [str(a) for a in args])
    error = result.exc_info[1] if result.exc_info else None
    while error is not None:
        # A real SIGINT's kinds only: a test that raises KeyboardInterrupt itself wants the command's 130.
        if isinstance(error, (RunInterrupted, StoppedAtOnce)):
            said = result.output.strip().splitlines() or ["stopped by Ctrl-C"]
            raise KeyboardInterrupt(said[-1]) from error  # its line: "interrupted: ... go on with: ..."
        error = error.__cause__ or error.__context__
    return result


def train(tmp_path, data_dir, *extra):
    """A one-epoch CPU training run into tmp_path/runs."""
    settings = ["--epochs", 1, "--batch-size", 64, "--device", "cpu", "--out", tmp_path / "runs"]
    return run("train", "--data-dir", data_dir, *settings, *extra)


def plain_text(output: str) -> str:
    """The words of the parser's boxed error message, without the box."""
    return " ".join(output.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())
