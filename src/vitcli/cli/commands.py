"""The Typer app: every command registered with its class. Each command lives in its own module and only
parses, calls the core and prints."""

from __future__ import annotations

import typer

from vitcli.cli.attention import attention
from vitcli.cli.common import (
    console,
    err_console,
    launchable_command,
    multi_value_command,
    vitcli_command,
    vitcli_group,
)
from vitcli.cli.compare import compare
from vitcli.cli.eval import eval_
from vitcli.cli.export import export
from vitcli.cli.finetune import finetune
from vitcli.cli.info import cache_app, info
from vitcli.cli.inspect import inspect
from vitcli.cli.predict import predict_
from vitcli.cli.preset_list import presets
from vitcli.cli.sweep import SweepCommand, report, sweep
from vitcli.cli.train import train
from vitcli.runtime.interrupt import ctrl_c_stops_at_once
from vitcli.runtime.ranks import launched
from vitcli.runtime.version import __version__

app = typer.Typer(
    name="vitcli",
    help="A command-line lab for Vision Transformers and CNNs on small images.",
    no_args_is_help=True,
    cls=vitcli_group(),
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)
Plain = vitcli_command()  # usage lines, flag help and choice hints of every command (cli/common.py)
app.command(cls=launchable_command("train"))(train)
app.command("eval", cls=Plain)(eval_)
app.command(cls=launchable_command("finetune"))(finetune)
app.command(cls=SweepCommand)(sweep)
app.command(cls=Plain)(report)
app.command(cls=Plain)(compare)
app.command(cls=Plain)(presets)
app.command(cls=multi_value_command(["index", "image"]))(attention)
app.command(cls=multi_value_command(["figure"]))(inspect)
app.command("predict", cls=Plain)(predict_)
app.command(cls=Plain)(export)
app.command(cls=Plain)(info)
app.add_typer(cache_app, name="cache")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vitcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass


def run() -> None:
    """Parse the command line and run the command, as `vitcli` (cli/__init__.py's main)."""
    ctrl_c_stops_at_once()
    if not launched().main:  # a torchrun worker: rank 0 prints for every rank
        console.quiet = err_console.quiet = True
    app()
