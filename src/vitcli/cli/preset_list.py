"""`vitcli presets`: the named recipes shipped with vitcli, and what each was measured to reach."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from vitcli.cli.common import console, user_errors
from vitcli.settings.presets import all_presets


def presets(
    as_json: bool = typer.Option(False, "--json", help="Print the presets, settings included, as JSON."),
) -> None:
    """List the presets: name, data set, model, what each reaches, on what and in how long (measured).

    Train one with [bold]vitcli train --preset NAME[/]; options given with it override its settings.
    """
    with user_errors():
        found = all_presets()
    if as_json:
        rows = [
            {
                "name": p.name,
                "description": p.description,
                "dataset": p.dataset,
                "reaches": p.reaches,
                "on": p.on,
                "time": p.time,
                "measured_by": p.measured_by,
                "settings": p.settings,
            }
            for p in found
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="vitcli presets (vitcli train --preset NAME)", title_justify="left")
    table.add_column("preset", no_wrap=True)  # a name to type: never cut
    table.add_column("data", no_wrap=True)
    table.add_column("model", max_width=11)  # "vit 128/conv3/4" in two lines, as "on"
    table.add_column("reaches", min_width=12)
    table.add_column("on", max_width=7)  # "2 CPU cores" in two lines: the table fits 80 columns
    table.add_column("in", no_wrap=True)
    for p in found:
        table.add_row(f"[bold]{p.name}[/]", p.dataset or "any", p.model, p.reaches, p.on, p.time)
    console.print(table)
    console.print("model: kind dim/patch/blocks (convN: N conv stages; conv0: N by image size)")
    console.print("data: any is the --dataset given")
    console.print("reaches: test accuracy; in: the command's whole time")
    for p in found:
        console.print(f"[bold]{p.name}[/]: {p.description}", highlight=False)
