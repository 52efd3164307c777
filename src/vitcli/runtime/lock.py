"""One process at a time in a run or sweep directory: an OS-level lock on `DIR/.lock`.

Two `vitcli train --name x` at once would write one model over the other and mix their metrics; two
sweeps in one directory would rewrite each other's results. The lock is the operating system's (flock),
so it is released when the process ends, however it ends (kill -9 included): no stale lock to clean up.
The file says who holds it, for the message the second process prints.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from vitcli.errors import OutputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; directories are not locked there
    fcntl = None

LOCK_FILE = ".lock"


class DirectoryLock:
    """`with DirectoryLock(run_dir, "run"):` holds the directory or raises OutputError naming the holder."""

    def __init__(self, directory: Path, what: str = "directory"):
        self.path = Path(directory) / LOCK_FILE
        self.what = what
        self.file = None

    def __enter__(self) -> DirectoryLock:
        if fcntl is None:
            return self
        try:
            self.file = self.path.open("a+", encoding="utf-8")
        except OSError as e:
            raise OutputError(
                f"cannot lock {self.path.parent}: {e.strerror or e}; choose another --out"
            ) from None
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            self.file.close()
            raise OutputError(
                f"the {self.what} {self.path.parent} is in use by {holder}; wait for it to finish, or use "
                "another --name"
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(
            json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": sys.argv[1:]})
        )
        self.file.flush()
        return self

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()  # closing releases the lock; the file stays, empty of meaning once unlocked

    def _holder(self) -> str:
        return _describe(self.file)


def _describe(file) -> str:
    """The holder the lock file names: its process, host and command."""
    try:
        file.seek(0)
        info = json.loads(file.read() or "{}")
    except (OSError, ValueError):
        info = {}
    command = " ".join(["vitcli", *info.get("command", [])])[:80]
    return f"process {info.get('pid', '?')} on {info.get('host', '?')} ({command})"


def held_by(directory: Path) -> str | None:
    """Who holds `directory` now (a run still training, say), or None. Only looks: opens an existing
    lock file for reading (a read-only run directory is fine) and lets go at once."""
    path = Path(directory) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        with path.open("r", encoding="utf-8") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _describe(file)
            return None  # free: closing the file lets go of the shared lock
    except OSError:  # unreadable: nobody we can name
        return None
