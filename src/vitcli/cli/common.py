"""What every command shares: the consoles and the conversion of user errors into one line."""

from __future__ import annotations

import contextlib

import typer
from rich.console import Console
from rich.markup import escape

from vitcli.errors import ConfigError, VitcliError
from vitcli.interrupt import RunStopped

console = Console()
err_console = Console(stderr=True)


def print_note(note: str, shown: Console = err_console) -> None:
    """A line the user should know (an option left out, classes paired by name), on stderr by default so
    that --json and --print-config output stays clean."""
    shown.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors(interrupted: str = "stopped at once; the state of the last finished epoch is kept"):
    """Turn a VitcliError into `error: <message>` on stderr and exit 1; a run stopped by Ctrl-C or SIGTERM
    (RunStopped, which says how to resume) or a second Ctrl-C (`interrupted` says what was kept) into exit
    130."""
    try:
        yield
    except VitcliError as e:
        # escape: messages quote user input and TOML section names like [model], not rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except (KeyboardInterrupt, RunStopped) as e:
        said = str(e) if isinstance(e, RunStopped) else interrupted
        err_console.print(f"[yellow]interrupted[/]: {escape(said)}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None


def launchable_command() -> type:
    """A Typer command class that keeps its raw arguments in `ctx.meta["args"]`, so that `--nproc N` can
    start the same command line in N processes."""
    from typer.core import TyperCommand

    class LaunchableCommand(TyperCommand):
        def parse_args(self, ctx, args):
            ctx.meta["args"] = list(args)
            return super().parse_args(ctx, args)

    return LaunchableCommand


def multi_value_command(multi: list[str] | tuple[str, ...], bool_flags: tuple[str, ...] = ()) -> type:
    """A Typer command class whose options in `multi` (names without dashes) take several values.

    Click options take one value per flag (`--index 0 --index 5`); users write `--index 0 5 17`.
    Before Click parses, every value gets its own copy of the flag (see `spread_values`), so Click
    still converts and checks each value and `--help` stays Typer's. A value Click rejects exits with 2
    and Click's usage message, as for every command; an option left without a value is one `error:`
    line and exit 1.
    """
    from typer.core import TyperCommand

    class MultiValueCommand(TyperCommand):
        def parse_args(self, ctx, args):
            try:
                spread = spread_values(args, multi, bool_flags)
            except VitcliError as e:
                err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
                ctx.exit(1)
            return super().parse_args(ctx, spread)

    return MultiValueCommand


def spread_values(args: list[str], multi, bool_flags=()) -> list[str]:
    """`--a 1 2 --b x` -> `--a 1 --a 2 --b x` for the options in `multi` (values run until the next
    token starting with `--`, so negative numbers are values). For the switches in `bool_flags`:
    `--no-x` -> `--x false` and a bare `--x` -> `--x true`, so that `--x true false` can be swept."""
    spread, i = [], 0
    while i < len(args):
        token = args[i]
        if token == "--":
            return spread + args[i:]
        if token.startswith("--no-") and token[5:] in bool_flags:
            spread += [f"--{token[5:]}", "false"]
            i += 1
            continue
        if token[2:] not in multi or not token.startswith("--"):
            spread.append(token)
            i += 1
            continue
        j = i + 1
        while j < len(args) and not args[j].startswith("--"):
            j += 1
        values = args[i + 1 : j] or (["true"] if token[2:] in bool_flags else [])
        if not values:
            raise ConfigError(f"{token} needs at least one value")
        for value in values:
            spread += [token, value]
        i = j
    return spread
