"""The command line: `vitcli` parses, calls the core (`vitcli.*`) and prints; nothing below `cli/` prints.

`main` is the `vitcli` script. The Typer app (`cli/commands.py`) is imported when it is needed, and each
command imports the core when it runs, so that `vitcli --version`, `--help` and shell completion start
without torch (`benchmarks/startup.py`).
"""

from __future__ import annotations

import sys

from vitcli.errors import EXIT_STOPPED
from vitcli.runtime.interrupt import STOPPED, ctrl_c_stops_at_once
from vitcli.runtime.version import __version__


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # answered before Typer and rich load: the app's own --version says so
        print(f"vitcli {__version__}")
        return
    # First, before Typer, rich and torch load (seconds): a Ctrl-C meanwhile is one line, not a traceback
    # of the imports it cut.
    ctrl_c_stops_at_once()
    try:
        from vitcli.cli.commands import run  # Typer, rich and every command's options

        run()
    except KeyboardInterrupt:  # outside any command's own handling (user_errors, the command class)
        print(f"interrupted: {STOPPED}", file=sys.stderr)
        sys.exit(EXIT_STOPPED)
    except SystemExit as e:
        # Typer ends a Ctrl-C that reaches it (while it resolves a command, or parses) with exit 130 and
        # not a word: its Exit(130) raised from the KeyboardInterrupt. vitcli's own 130s say what stopped.
        if isinstance(getattr(e.__context__, "__cause__", None), KeyboardInterrupt):
            print(f"interrupted: {STOPPED}", file=sys.stderr)
        raise


def __getattr__(name: str):
    """`vitcli.cli.app`, the Typer app, for tests and tools that drive it (CliRunner)."""
    if name == "app":
        from vitcli.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
