"""Atomic file writes: a reader (or a crash) never sees half a checkpoint or results file; and one line,
not a traceback, when a file cannot be written."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from vitcli.errors import OutputError

# A temporary file of atomic_write (.NAME.XXXX.tmp) untouched for this long was left by a killed process;
# a younger one may be another process's write in progress, and is left alone by whoever cleans up.
STALE_SECONDS = 60


def atomic_write(path: str | Path, write: Callable[[Path], None], replace: bool = True) -> None:
    """Call `write(tmp)` to fill a temporary file next to `path`, then rename it over `path`.

    The rename is atomic on one file system, so `path` is either the old file or the whole new one. With
    `replace=False` an existing `path` is never replaced, even by a second process writing it at the
    same moment (FileExistsError): the new file is linked to `path`, which fails where `path` exists.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        # mkstemp makes the file private (0600); give it the permissions any new file would get.
        os.chmod(tmp, 0o666 & ~_umask())
        if replace:
            os.replace(tmp, path)
        else:
            _link(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    Path(tmp).unlink(missing_ok=True)  # the name left behind by the link


def _link(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links (FAT, some network mounts): check, then rename
        if path.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@contextlib.contextmanager
def writing(path: str | Path, what: str | None = None, option: str = "--out"):
    """An OSError while writing `path` (a full disk, permissions, a path under a file) as one OutputError
    line naming the file; `what` names it in words ("chart"), `option` the option that chose the place."""
    try:
        yield path
    except OSError as e:
        name = f"{what} {path}" if what else str(path)
        raise OutputError(f"cannot write {name}: {e.strerror or e}; {_advice(e, option)}") from None


def _advice(error: OSError, option: str) -> str:
    """What to do about a failed write: what fits its cause (full, read-only, no permission)."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"free space there, or choose another {option}"
    if error.errno == errno.EROFS:
        return f"the file system is read-only: choose another {option}"
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"you may not write there: choose another {option} (or change the folder's permissions)"
    return f"free space or choose another {option}"
