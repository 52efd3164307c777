"""`vitcli info`: versions, device, data and caches at a glance; `vitcli cache clear` empties the cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from vitcli.cli.common import console, user_errors, vitcli_command
from vitcli.cli.tables import fmt_bytes

if TYPE_CHECKING:  # annotations only: the core is imported when a command runs
    from vitcli.lab.environment import Info

FILES_WORDS = {"missing": "not there", "incomplete": "some files missing"}  # lab.environment's states


def info(
    data_dir: Optional[Path] = typer.Option(
        None, help="The data folder to look in. \\[default: $VITCLI_DATA_DIR or ~/.cache/vitcli/data]"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Show the versions of vitcli, Python, torch, torchvision and timm, the device --device auto picks,
    the data folder and which data sets are there, and the caches (decoded tensors, Hugging Face hub).

    [bold]vitcli cache clear[/] empties the decoded-tensor cache.
    """
    from vitcli.lab.environment import gather

    with user_errors():
        found = gather(data_dir)
    if as_json:
        typer.echo(json.dumps(found.to_dict(), indent=2))
        return
    console.print(info_table(found))


def info_table(found: Info) -> Table:
    """Two columns, every value folded rather than cut, so that long paths fit 80 columns."""
    rows = list(found.versions.items())
    gpus = f": {len(found.gpus)} x {found.gpus[0]}" if found.gpus and len(set(found.gpus)) == 1 else ""
    if len(set(found.gpus)) > 1:
        gpus = ": " + ", ".join(found.gpus)
    none = " (PyTorch sees no CUDA GPU)" if found.device == "cpu" else ""
    rows.append(("device (auto)", found.device + gpus + none))
    rows.append(("data dir", found.data_dir + ("" if found.data_dir_exists else " (not there yet)")))
    for i, d in enumerate(found.datasets):
        cached = ", cached" if d.cached else ""
        rows.append(("data sets" if i == 0 else "", f"{d.name}: {FILES_WORDS.get(d.files, d.files)}{cached}"))
    if found.other_cached:
        # folder2-NAME: an image folder named NAME (vitcli.data.datasets names its cache files so)
        others = [f"image folder {n.removeprefix('folder2-')}" for n in found.other_cached]
        rows.append(("", f"cached too: {', '.join(others)}"))
    files = f"{found.cache_files} file{'s' if found.cache_files != 1 else ''}"
    rows.append(("tensor cache", found.cache_dir))
    rows.append(("cache size", f"{fmt_bytes(found.cache_bytes)} in {files} ({found.cache_bytes:,} bytes)"))
    rows.append(("HF hub cache", found.hf_hub_cache))
    offline = "set: weights only from the hub cache" if found.hf_hub_offline else "not set"
    rows.append(("HF_HUB_OFFLINE", offline))
    table = Table(title="vitcli info", title_justify="left", box=box.SIMPLE_HEAD, show_header=False)
    table.add_column("what", no_wrap=True, style="bold")
    table.add_column("value", overflow="fold")
    for what, value in rows:
        table.add_row(what, escape(value))  # paths are the user's: "[" is no markup
    return table


cache_app = typer.Typer(
    add_completion=False,
    help="The cache of decoded data sets (tensors); the downloaded data is not touched.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@cache_app.command("clear", cls=vitcli_command())
def clear() -> None:
    """Remove the decoded-tensor cache files; the next run decodes its data set again (a second or two).

    The downloaded data (--data-dir) stays. A temporary file written in the last minute is kept: another
    vitcli may be writing it now.
    """
    from vitcli.data import cache

    folder = cache.tensor_dir()
    with user_errors():
        cleared = cache.clear()
    where = escape(str(folder))
    if cleared.files == 0:
        console.print(f"the cache is already empty ({where})", highlight=False)
    else:
        files = f"{cleared.files} file{'s' if cleared.files != 1 else ''}"
        console.print(f"removed {files}, {fmt_bytes(cleared.bytes)} from {where}", highlight=False)
    if cleared.kept:
        console.print(
            f"kept {cleared.kept} temporary file{'s' if cleared.kept != 1 else ''} written in the last "
            "minute (another vitcli may be writing it)",
            highlight=False,
        )
