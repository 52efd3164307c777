"""The Typer app: every command registered with its class. Each command lives in its own module and only
parses, calls the core and prints."""

from __future__ import annotations

import typer

from vitcli.cli.common import (
    console,
    err_console,
    launchable_command,
    multi_value_command,
    vitcli_command,
    vitcli_group,
)
from vitcli.runtime.interrupt import ctrl_c_stops_at_once
from vitcli.runtime.ranks import launched
from vitcli.runtime.version import __version__

Plain = vitcli_command()  # usage lines, flag help and choice hints of every command (cli/common.py)

# Every command: the module under vitcli.cli that declares it, its function (or Typer group) there, and
# its command class. A module is imported when one of its commands is asked for, so `vitcli train --help`
# and completing train's options import train's module alone; `vitcli --help` lists them all.
COMMANDS = {
    "train": ("train", "train", lambda module: launchable_command("train")),
    "eval": ("eval", "eval_", lambda module: Plain),
    "finetune": ("finetune", "finetune", lambda module: launchable_command("finetune")),
    "sweep": ("sweep", "sweep", lambda module: module.SweepCommand),
    "report": ("report", "report", lambda module: Plain),
    "compare": ("compare", "compare", lambda module: Plain),
    "presets": ("preset_list", "presets", lambda module: Plain),
    "models": ("model_list", "models", lambda module: Plain),
    "attention": ("attention", "attention", lambda module: multi_value_command(["index", "image"])),
    "inspect": ("inspect", "inspect", lambda module: multi_value_command(["figure"])),
    "predict": ("predict", "predict_", lambda module: Plain),
    "export": ("export", "export", lambda module: Plain),
    "info": ("info", "info", lambda module: Plain),
    "cache": ("info", "cache_app", None),  # a Typer group of its own: vitcli cache clear
}

app = typer.Typer(
    name="vitcli",
    help="A command-line lab for Vision Transformers and CNNs on small images.",
    no_args_is_help=True,
    cls=vitcli_group(COMMANDS),
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


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
