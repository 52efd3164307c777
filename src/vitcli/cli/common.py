"""What every command shares: the consoles and the conversion of user errors into one line."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup, TyperOption

from vitcli.cli.options import SETTINGS, click_params
from vitcli.errors import EXIT_ERROR, EXIT_STOPPED, ConfigError, RankLost, VitcliError
from vitcli.runtime.interrupt import STOPPED, RunStopped, command_ending, command_starting, stopped_at_once
from vitcli.runtime.launch import leave_error, started_by_nproc
from vitcli.settings.suggest import closest

console = Console()
err_console = Console(stderr=True)


def print_note(note: str, shown: Console = err_console) -> None:
    """A line the user should know (an option left out, classes paired by name), on stderr by default so
    that --json and --print-config output stays clean."""
    shown.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def user_errors(interrupted: str = STOPPED, last: bool = True):
    """Turn a VitcliError into `error: <message>` on stderr and its exit code (1; EXIT_RANK_LOST for a
    lost rank); a run stopped by Ctrl-C or SIGTERM (RunStopped, which says how to resume) or a second
    Ctrl-C (`interrupted` says what was kept) into exit 130. After the `last` block of a command, a
    Ctrl-C stops nothing: its work is written, and it only prints (runtime.interrupt.command_ending)."""
    command_starting()
    try:
        yield
    except (KeyboardInterrupt, RunStopped) as e:
        _say_stopped(str(e) if isinstance(e, RunStopped) else interrupted)
    except Exception as e:
        # Raised while a Ctrl-C was on its way up: a C extension (matplotlib's, numpy's) that the Ctrl-C
        # reached mid-call may report it as an error of its own ("incompatible function arguments").
        if stopped_at_once():
            _say_stopped(interrupted)
        if isinstance(e, VitcliError):
            _say_error(e)
        raise
    if last:
        command_ending()


def _say_error(e: VitcliError) -> None:
    command_ending()
    # Under --nproc the launcher names the lost rank itself, in the one line the terminal gets.
    if not (isinstance(e, RankLost) and started_by_nproc()):
        # escape: messages quote user input and TOML section names like [model], not rich markup
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        leave_error(str(e))  # printed by --nproc's launcher if this rank, quiet, is the only one
    raise typer.Exit(e.exit_code) from None


def _say_stopped(said: str) -> None:
    command_ending()
    err_console.print(f"[yellow]interrupted[/]: {escape(said)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_STOPPED) from None


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


# --- the command classes: how the help reads, and the spellings the parser takes ---------------------

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def reflow(help: str | None) -> str | None:
    """A docstring's paragraphs each on one line, for rich to wrap to the terminal: Typer keeps the line
    breaks of every paragraph after the first, which cut lines short at 80 columns. A paragraph with an
    indented line (an example) keeps its lines."""
    if help is None:
        return None
    paragraphs = help.split("\n\n")
    return "\n\n".join(
        p if any(line.startswith(" ") for line in p.splitlines()) else " ".join(p.split()) for p in paragraphs
    )


def vitcli_command(
    multi: list[str] | tuple[str, ...] = (),
    bool_flags: tuple[str, ...] = (),
    keep_args: bool = False,
    bool_values: bool = False,
    settings: str | None = None,
    many: bool = False,
    settings_last: bool = False,
) -> type:
    """A Typer command class for vitcli's commands. Every one of them: the usage line names arguments
    plainly (`CHECKPOINT`), flags show no `<bool>` in `--help`, and a rejected choice gets the nearest
    valid one. Besides, as asked:

    - `multi` (names without dashes): options that take several values (`--index 0 5 17`; see
      `spread_values`), with `bool_flags` among them swept as `--augment true false`;
    - `keep_args`: the raw arguments in `ctx.meta["args"]`, so that `--nproc N` can start the same
      command line in N processes;
    - `bool_values`: `--x true` and `--x false` for the `--x/--no-x` switches, as a sweep writes them;
    - `settings`: the options made from the settings' fields that this command offers (`cli/options.py`),
      before the function's own (after them with `settings_last`: a sweep's own options lead its help);
      their values go to `ctx.meta`, where `given_settings` reads them, and with `many` each takes one
      or more values.
    """

    class Command(TyperCommand):
        # The settings' options are made the first time the command's parameters are asked for: only the
        # command that runs (or whose help or completion is asked for) pays for them.
        settings_params: list | None = None

        def __init__(self, *args, help: str | None = None, **kwargs):
            super().__init__(*args, help=reflow(help), **kwargs)

        @property
        def params(self) -> list:
            if settings and self.settings_params is None:
                self.settings_params = click_params(settings, many)
                at = len(self._own_params) if settings_last else 0
                self._own_params[at:at] = self.settings_params
            return self._own_params

        @params.setter
        def params(self, value: list) -> None:
            self._own_params = value

        def invoke(self, ctx):
            if settings:  # the function declares only its own options; the settings' go to ctx.meta
                ctx.meta[SETTINGS] = {p.name: ctx.params.pop(p.name, None) for p in self.settings_params}
            try:
                return super().invoke(ctx)
            except KeyboardInterrupt:  # outside user_errors: while the command imported torch, say
                _say_stopped(STOPPED)  # Typer would end it with exit 130 and not a word

        def get_params(self, ctx):
            params = super().get_params(ctx)
            skip_validation_when_unset(params)  # --help, --install-completion and the command's own
            plain_metavars(params, multi, bool_flags)
            return params

        def collect_usage_pieces(self, ctx):
            return plain_usage(self, ctx)

        def parse_args(self, ctx, args):
            if keep_args:
                ctx.meta["args"] = list(args)
            try:
                if multi or bool_flags:
                    args = spread_values(args, multi, bool_flags)
                if bool_values:
                    args = switch_values(args, _switches(self.params))
            except VitcliError as e:
                err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
                ctx.exit(EXIT_ERROR)
            with choice_hints():
                return super().parse_args(ctx, args)

    return Command


class UnsetSkipsValidation(TyperOption):
    """Typer validates every option's value through pydantic, and importing pydantic costs about 0.2 s at
    every start, also for options nobody gave (None, or () for several values), which need no validation.
    Those skip it; a given value is validated as Typer does."""

    def process_value(self, ctx, value):
        if (value is not None and value != ()) or self.required:
            return super().process_value(ctx, value)
        return value if self.callback is None else self.callback(ctx, self, value)


def skip_validation_when_unset(params) -> None:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = UnsetSkipsValidation


def launchable_command(settings: str) -> type:
    """train's and finetune's class: the options of the settings `settings` offers, `--nproc N` restarts
    the raw arguments, and the switches take `--augment true` as well as `--augment`/`--no-augment`."""
    return vitcli_command(keep_args=True, bool_values=True, settings=settings)


def multi_value_command(multi: list[str] | tuple[str, ...], bool_flags: tuple[str, ...] = ()) -> type:
    """A command class whose options in `multi` (names without dashes) take several values.

    Click options take one value per flag (`--index 0 --index 5`); users write `--index 0 5 17`.
    Before Click parses, every value gets its own copy of the flag (see `spread_values`), so Click
    still converts and checks each value and `--help` stays Typer's. A value Click rejects exits with 2
    and Click's usage message, as for every command; an option left without a value is one `error:`
    line and exit 1.
    """
    return vitcli_command(multi, bool_flags)


def plain_metavars(params, multi=(), bool_flags=()) -> None:
    """Flags take no value, so `--help` shows none for them (Typer would show `<bool>`); options that
    take several values say so (`<int>...`, the swept switches `true|false...`)."""
    for param in params:
        name = (param.name or "").replace("_", "-")
        if name in multi and getattr(param, "metavar", None) is None:
            element = param.display_type(None).replace("list[", "").replace("]>", ">")  # `<list[int]>`
            param.metavar = "true|false..." if name in bool_flags or element == "<bool>" else element + "..."
        elif getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


def plain_usage(command, ctx) -> list[str]:
    """`[OPTIONS] CHECKPOINT`: arguments by name in capitals, `[NAME]` when optional, `...` when several."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if param.param_type_name != "argument":
            pieces += param.get_usage_pieces(ctx)
            continue
        name = param.metavar or param.name.upper()
        name = name if param.required else f"[{name}]"
        pieces.append(name + ("..." if param.nargs != 1 else ""))
    return pieces


@contextlib.contextmanager
def choice_hints():
    """Click's message for a value that is not one of the choices, with the nearest one if any is close:
    "'resnet' is not one of 'vit', 'cnn'." stays; "'spt2' ... Did you mean 'spt'?" is added."""
    from typer._click.exceptions import BadParameter

    try:
        yield
    except BadParameter as e:
        choices = getattr(getattr(e.param, "type_descriptor", None), "choices", None)
        given = re.search(r"'([^']*)' is not one of", e.message)
        match = (
            closest(given.group(1), [getattr(c, "value", c) for c in choices]) if choices and given else None
        )
        if match is not None:
            e.message += f" Did you mean '{match}'?"
        raise


def _switches(params) -> dict[str, str]:
    """`--augment` -> `--no-augment` for the command's `--x/--no-x` switches."""
    return {
        p.opts[0]: p.secondary_opts[0]
        for p in params
        if getattr(p, "is_bool_flag", False) and p.opts and p.secondary_opts
    }


def switch_values(args: list[str], switches: dict[str, str]) -> list[str]:
    """`--augment true` -> `--augment` and `--augment false` -> `--no-augment` for the switches (flag ->
    its negative), so that a line copied from a sweep works; a bare `--augment` stays as it is."""
    out, i = [], 0
    while i < len(args):
        token = args[i]
        if token == "--":
            return out + args[i:]
        value = args[i + 1].lower() if token in switches and i + 1 < len(args) else None
        if value in _TRUE or value in _FALSE:
            out.append(token if value in _TRUE else switches[token])
            i += 2
            continue
        out.append(token)
        i += 1
    return out


def vitcli_group(commands: dict[str, tuple]) -> type:
    """The app's Typer group. Its commands (`cli/commands.py`'s table) are made when first asked for, from
    their modules; its own `--help` and `--version` show no `<bool>`, and the command list shows each
    command's first paragraph whole."""

    class Group(TyperGroup):
        def list_commands(self, ctx) -> list[str]:
            return list(commands)

        def get_command(self, ctx, name: str):
            if name not in self.commands and name in commands:
                self.commands[name] = load_command(name, *commands[name])
            return self.commands.get(name)

        def get_params(self, ctx):
            params = super().get_params(ctx)
            skip_validation_when_unset(params)  # --help, --install-completion and the command's own
            plain_metavars(params)
            return params

    return Group


def load_command(name: str, module_name: str, attribute: str, command_class) -> TyperCommand:
    """The click command `name`: its module imported, its function registered with its class."""
    module = importlib.import_module(f"vitcli.cli.{module_name}")
    declared = getattr(module, attribute)
    # Registered on an app of their own as on the root app, so that Typer makes them as it always does.
    holder = typer.Typer(add_completion=False, rich_markup_mode="rich")
    if command_class is None:  # a Typer group of its own
        holder.add_typer(declared, name=name)
    else:
        holder.command(name, cls=command_class(module))(declared)
    holder.callback()(lambda: None)  # with a callback the holder is a group, whatever it holds
    command = typer.main.get_command(holder).commands[name]
    if command.help and not command.short_help:
        # The command list shows the first paragraph; Typer's rich mode would keep the docstring's line
        # breaks in it, so it broke mid-sentence. Joined, rich wraps it at the width.
        command.short_help = " ".join(inspect.cleandoc(command.help).split("\n\n")[0].split())
    return command
