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


def multi_value_command(*names: str) -> type:
    """A Typer command class whose options `names` take several values after one flag.

    Click options take one value per flag (`--index 0 --index 5`); users write `--index 0 5 17`.
    Before Click parses, every extra value is given its own copy of the flag, so Click sees the
    repeated form and converts and checks each value as usual. Values run until the next token that
    starts with '-' (a negative number counts as a value).
    """
    from typer.core import TyperCommand

    class MultiValueCommand(TyperCommand):
        def parse_args(self, ctx, args):
            return super().parse_args(ctx, spread_values(args, names))

    return MultiValueCommand


def spread_values(args: list[str], names: tuple[str, ...]) -> list[str]:
    """['--index', '0', '5'] -> ['--index', '0', '--index', '5'] for the options in `names`."""
    out: list[str] = []
    current, seen = None, 0
    for arg in args:
        if arg.startswith("-") and not _is_number(arg):
            current, seen = (arg if arg in names else None), 0
        elif current is not None:
            if seen:
                out.append(current)
            seen += 1
        out.append(arg)
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
