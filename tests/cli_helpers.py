"""What the command-line tests share: running a command, a quick training run, reading the parser's
messages."""

from typer.testing import CliRunner

from vitcli.cli import app

runner = CliRunner()


def run(*args):
    """`vitcli ARGS...` in this process; arguments may be paths and numbers."""
    return runner.invoke(app, [str(a) for a in args])


def train(tmp_path, data_dir, *extra):
    """A one-epoch CPU training run into tmp_path/runs."""
    settings = ["--epochs", 1, "--batch-size", 64, "--device", "cpu", "--out", tmp_path / "runs"]
    return run("train", "--data-dir", data_dir, *settings, *extra)


def plain_text(output: str) -> str:
    """The words of the parser's boxed error message, without the box."""
    return " ".join(output.translate({ord(c): " " for c in "│╭╮╰╯─"}).split())
