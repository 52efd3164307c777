"""What every command shares: the consoles and the conversion of user errors into one line."""

from __future__ import annotations

import contextlib

import typer
from rich.console import Console
from rich.markup import escape

from vitcli.errors import VitcliError

console = Console()
err_console = Console(stderr=True)


@contextlib.contextmanager
def user_errors():
    """Turn a VitcliError into `error: <message>` on stderr and exit 1; Ctrl-C into exit 130."""
    try:
        yield
    except VitcliError as e:
        # escape: messages quote user input and TOML section names like [model], not rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]: no checkpoint was written")
        raise typer.Exit(130) from None
