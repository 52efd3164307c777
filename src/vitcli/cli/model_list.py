"""`vitcli models`: the trained models shipped with vitcli, and what each was measured to reach."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from vitcli.cli.common import console, user_errors


def models(
    as_json: bool = typer.Option(False, "--json", help="Print the models, files included, as JSON."),
) -> None:
    """List the trained models shipped with vitcli: data set, test accuracy, size, how each was measured.

    Use a name wherever a checkpoint goes: [bold]vitcli attention mnist-vit --index 3[/], eval, inspect,
    predict, export. A file or run directory of the same name wins over it.
    """
    from vitcli.cli.tables import fmt_bytes
    from vitcli.models.shipped import shipped_models
    from vitcli.sweeps.results import fmt_pct

    with user_errors():
        found = shipped_models()
    if as_json:
        rows = [
            {
                "name": m.name,
                "what": m.what,
                "dataset": m.dataset,
                "test_accuracy": m.test_accuracy,
                "test_images": m.test_images,
                "parameters": m.parameters,
                "bytes": m.size,
                "file": str(m.file),
                "measured_by": m.measured_by,
                "trained_by": m.trained_by,
                "trained_on": m.trained_on,
            }
            for m in found
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="vitcli models (vitcli attention NAME, eval NAME, ...)", title_justify="left")
    table.add_column("model", no_wrap=True)  # a name to type: never cut
    table.add_column("data", no_wrap=True)
    table.add_column("test accuracy", no_wrap=True)
    table.add_column("parameters", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    for m in found:
        accuracy = f"{fmt_pct(m.test_accuracy)} of {m.test_images:,}"
        table.add_row(f"[bold]{m.name}[/]", m.dataset, accuracy, f"{m.parameters:,}", fmt_bytes(m.size))
    console.print(table)
    total = fmt_bytes(sum(m.size for m in found))
    console.print(f"{len(found)} model{'s' * (len(found) != 1)}, {total} together", highlight=False)
    for m in found:
        console.print(f"\n[bold]{m.name}[/]: {escape(m.what)}", highlight=False)
        # The commands on one line each, for copying: the terminal wraps them, rich does not break them.
        console.print(f"  measured by: {escape(m.measured_by)}", highlight=False, soft_wrap=True)
        console.print(f"  trained by: {escape(m.trained_by)}", highlight=False, soft_wrap=True)
        if m.trained_on:
            console.print(f"  trained on: {escape(m.trained_on)}", highlight=False, soft_wrap=True)
