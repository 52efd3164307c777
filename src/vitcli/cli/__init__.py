"""The command line: `vitcli` parses, calls the core (`vitcli.*`) and prints; nothing below `cli/` prints.

`main` is the `vitcli` script. The Typer app (`cli/commands.py`) is imported when it is needed, and each
command imports the core when it runs, so that `vitcli --version`, `--help` and shell completion start
without torch (`benchmarks/startup.py`).
"""

from __future__ import annotations

import sys

from vitcli.runtime.version import __version__


def main() -> None:
    if sys.argv[1:] == ["--version"]:  # answered before Typer and rich load: the app's own --version says so
        print(f"vitcli {__version__}")
        return
    from vitcli.cli.commands import run  # Typer, rich and every command's options

    run()


def __getattr__(name: str):
    """`vitcli.cli.app`, the Typer app, for tests and tools that drive it (CliRunner)."""
    if name == "app":
        from vitcli.cli.commands import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
