"""The Typer app. Each command lives in its own module and only parses, calls the core and prints."""

from __future__ import annotations

from typing import Optional

import typer

from vitcli import __version__
from vitcli.cli.attention import attention
from vitcli.cli.common import console, err_console, launchable_command, multi_value_command
from vitcli.cli.eval import eval_
from vitcli.cli.finetune import finetune
from vitcli.cli.inspect import inspect
from vitcli.cli.presets import presets
from vitcli.cli.sweep import SweepCommand, report, sweep
from vitcli.cli.train import train

app = typer.Typer(
    name="vitcli",
    help="A command-line lab for Vision Transformers and CNNs on small images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)
app.command(cls=launchable_command())(train)
app.command("eval")(eval_)
app.command(cls=launchable_command())(finetune)
app.command(cls=SweepCommand)(sweep)
app.command()(report)
app.command()(presets)
app.command(cls=multi_value_command(["index", "image"]))(attention)
app.command(cls=multi_value_command(["figure"]))(inspect)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vitcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


def main() -> None:
    from vitcli.distributed import launched

    if not launched().main:  # a torchrun worker: rank 0 prints for every rank
        console.quiet = err_console.quiet = True
    app()
