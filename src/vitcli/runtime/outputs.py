"""Named outputs (`--out`, `--html`, ...): written whole or not at all, never over a file that is there
already unless the user asked (`--overwrite`), and then only over a file the same command made.

    check_output(path, "--out", overwrite, made_by=png_made_by("attention"))   # before the work
    write_output(path, write, "--out", overwrite)                              # after it

The check before the work gives its answer in a second rather than after minutes; the write itself is
what makes it safe: without `overwrite` it links the finished file into place, which fails where a
file appeared meanwhile (a second vitcli writing the same --out at the same moment), so of two
commands exactly one writes and the other says the file exists.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from vitcli.errors import OutputError
from vitcli.runtime.files import STALE_SECONDS, atomic_write, writing

SOFTWARE = "Software"  # the PNG text key (a standard one) that says which program made the picture


def check_output(
    path: Path,
    option: str,
    overwrite: bool,
    made_by: Callable[[Path], bool],
    whose: str,
) -> None:
    """An OutputError if `path` may not be written: it exists and `overwrite` is off, or `overwrite` is on
    but `made_by(path)` says the file is not one that `whose` ("vitcli attention") made."""
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise exists(path, option)
    if path.is_symlink() or not made_by(path):
        raise OutputError(
            f"{path} was not made by {whose}, so --overwrite leaves it alone; move it away or choose "
            f"another {option}"
        )


def exists(path: Path, option: str) -> OutputError:
    return OutputError(f"{path} already exists; pass --overwrite to replace it, or choose another {option}")


def write_output(
    path: Path, write: Callable[[Path], None], option: str, overwrite: bool, what: str | None = None
) -> Path:
    """Write `path` through `write(tmp)` atomically: over an old file only with `overwrite` (checked by
    `check_output` beforehand), never over one that another process wrote meanwhile."""
    remove_stale_temporaries(path)
    with writing(path, what, option):
        try:
            atomic_write(path, write, replace=overwrite)
        except FileExistsError:
            if path.exists():  # written by another process since the check: theirs stays
                raise exists(path, option) from None
            raise  # a file where the folder should be: `writing` says so
    return path


def remove_stale_temporaries(path: Path) -> None:
    """The hidden `.NAME.*.tmp` files (and folders: a timm export is written as one) that a killed write
    of `path` left beside it; those written to in the last STALE_SECONDS may be another command's."""
    now = time.time()
    for leftover in [*path.parent.glob(f".{path.name}.*.tmp"), *path.parent.glob(f".{path.name}.*.old")]:
        with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: leave it
            if now - leftover.lstat().st_mtime < STALE_SECONDS:
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()


def png_mark(command: str) -> dict[str, str]:
    """The PNG text that marks a picture as `vitcli COMMAND`'s (matplotlib's savefig(metadata=...))."""
    return {SOFTWARE: f"vitcli {command}"}


def png_made_by(*commands: str) -> Callable[[Path], bool]:
    """Whether a file is a PNG that one of `vitcli COMMAND...` wrote (its png_mark)."""
    marks = {png_mark(command)[SOFTWARE] for command in commands}

    def made_by(path: Path) -> bool:
        try:  # PIL reads the text chunks without decoding the pixels
            with Image.open(path) as image:
                return image.format == "PNG" and getattr(image, "text", {}).get(SOFTWARE) in marks
        except (OSError, UnidentifiedImageError, ValueError):
            return False

    return made_by
