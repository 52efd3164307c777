"""The on-disk cache of decoded data sets: one safetensors file of uint8 tensors per source.

The cache key is a fingerprint of the source files: for every file under the source folder its path
relative to the folder, its size, its modification time and a SHA-256 of its content. Symbolic links are
followed, and each folder is read once: a link to a folder already read, to the source folder or to a
folder above it is not followed, so that loops of links end. What the fingerprint detects, and so what
makes a run decode again:

- any file added, removed or renamed, and any change of a file's size or modification time;
- any change of content of a file up to 1 GiB, even one made in place with the same size and the
  modification time set back. Every byte is hashed: about 0.04 s for MNIST's 55 MB and 0.12 s for
  CIFAR-10's 180 MB (against 0.3-0.45 s and 1-1.7 s to decode them), 0.51 s for a folder of 60,000
  small JPEGs (the old fingerprint of sizes and times took 0.49 s; decoding takes 9.5 s);
- in a file over 1 GiB, a change within its first or last 16 MiB.

Not detected: a change in the middle of a file over 1 GiB that keeps its size and modification time
(none of the supported data sets has such a file), and files in a folder that cannot be listed (a
folder without read permission is skipped, as before).

Each cache file carries in its metadata the byte count and a SHA-256 of its tensors (name, dtype, shape
and bytes of each, in name order) and of the class names, checked on every load: about 0.03 s for
MNIST's 55 MB of tensors and 0.1 s for CIFAR's 185 MB (SHA-256 measured twice as fast as BLAKE2b here,
on a CPU with SHA instructions). A cache file that safetensors cannot open (truncated, garbled header),
that has no checksum (an older format) or whose contents do not match its checksum is never used as
data: the source is decoded again, the cache rewritten, and `on_note` told in one line. (A cache file
rewritten on purpose with a matching checksum is trusted: the check is against damage, not tampering.)

The cache is only an optimisation: if it cannot be written (read-only home, full disk) the data is
decoded again next time and nothing fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import safe_open

from vitcli.errors import OutputError
from vitcli.runtime.files import STALE_SECONDS
from vitcli.runtime.tensor_files import save_tensors

FORMAT = "vitcli-data/2"  # /2: with "sha256" and "bytes" in the metadata, and content in the fingerprint
WHOLE_FILE_LIMIT = 1 << 30  # files up to this size are hashed whole for the fingerprint
EDGE_BYTES = 16 << 20  # of a larger file, its first and last EDGE_BYTES are hashed
_CHUNK = 1 << 20
# O_NONBLOCK: opening a FIFO left in a data folder must not hang; O_BINARY: no newline translation on Windows.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
SUFFIX = ".safetensors"


def cache_root() -> Path:
    """$VITCLI_CACHE_DIR, else $XDG_CACHE_HOME/vitcli, else ~/.cache/vitcli."""
    if os.environ.get("VITCLI_CACHE_DIR"):
        return Path(os.environ["VITCLI_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "vitcli"


def tensor_dir() -> Path:
    """The folder of decoded-tensor files, one NAME-FINGERPRINT.safetensors per source."""
    return cache_root() / "tensors"


@dataclass(frozen=True)
class Entry:
    name: str  # the source's cache name: mnist, cifar10, folder2-<folder name>, ...
    path: Path
    bytes: int


def entries() -> list[Entry]:
    """The finished cache files, by name; none when the cache folder does not exist."""
    found = []
    for path in sorted(tensor_dir().glob(f"*{SUFFIX}")):
        with contextlib.suppress(OSError):  # removed by another process while listed
            if path.is_file() and not path.name.startswith("."):
                found.append(Entry(path.name[: -len(SUFFIX)].rsplit("-", 1)[0], path, path.stat().st_size))
    return found


@dataclass(frozen=True)
class Cleared:
    files: int  # removed
    bytes: int  # freed
    kept: int  # temporary files younger than STALE_SECONDS: maybe being written now


def clear() -> Cleared:
    """Remove the decoded-tensor files (the downloaded data is elsewhere and stays). Finished files go:
    a reader that has one open keeps reading it (POSIX), and cache writes never change a finished file
    but rename a new one over it. Temporary files go only when stale (STALE_SECONDS), so that a write
    under way in another process finishes; its file is then an ordinary cache entry."""
    folder = tensor_dir()
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            f"the tensor cache {folder} is a file, not a folder; set VITCLI_CACHE_DIR to a folder"
        )
    files = freed = kept = 0
    now = time.time()
    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
        try:
            info = path.lstat()
            temporary = path.name.startswith(".") and path.name.endswith(".tmp")
            if not stat.S_ISREG(info.st_mode) or not (temporary or path.name.endswith(SUFFIX)):
                continue  # not the cache's: leave it
            if temporary and now - info.st_mtime < STALE_SECONDS:
                kept += 1
                continue
            path.unlink()
        except FileNotFoundError:
            continue  # removed by another process meanwhile
        except OSError as e:
            raise OutputError(
                f"cannot remove {path}: {e.strerror or e}; check the folder's permissions"
            ) from None
        files, freed = files + 1, freed + info.st_size
    return Cleared(files, freed, kept)


def fingerprint(source: Path) -> str:
    """A digest of the names, sizes, modification times and contents of the files under `source`."""
    root = str(source.resolve())
    digest = hashlib.sha256(root.encode())
    seen = {root}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [
            name for name in sorted(dirnames) if _first_visit(os.path.join(dirpath, name), seen, root)
        ]
        folder = os.path.relpath(dirpath, root)
        for name in sorted(filenames):
            digest.update(f"{folder}/{name}\0".encode())
            _hash_file(digest, os.path.join(dirpath, name))
    return digest.hexdigest()[:16]


def _first_visit(path: str, seen: set[str], root: str) -> bool:
    """Whether to walk the folder `path`: not when it was walked already, or holds the source folder."""
    real = os.path.realpath(path)
    if real in seen or root.startswith(real.rstrip(os.sep) + os.sep):
        return False
    seen.add(real)
    return True


def _hash_file(digest, path: str) -> None:
    """One file's size, modification time and content (or that it cannot be read) into `digest`."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:  # a dangling link, no permission: the decoder will say what is wrong
        digest.update(f"unreadable {type(e).__name__}\n".encode())
        return
    try:
        info = os.fstat(fd)
        digest.update(f"{info.st_size}\0{info.st_mtime_ns}\n".encode())
        if not stat.S_ISREG(info.st_mode):
            return
        if info.st_size <= WHOLE_FILE_LIMIT:
            _hash_range(digest, fd, 0, info.st_size)
        else:
            _hash_range(digest, fd, 0, EDGE_BYTES)
            _hash_range(digest, fd, info.st_size - EDGE_BYTES, EDGE_BYTES)
    except OSError as e:
        digest.update(f"\0read error {type(e).__name__}\n".encode())
    finally:
        os.close(fd)


def _hash_range(digest, fd: int, start: int, length: int) -> None:
    os.lseek(fd, start, os.SEEK_SET)
    while length > 0 and (chunk := os.read(fd, min(length, _CHUNK))):
        digest.update(chunk)
        length -= len(chunk)


def checksum(tensors: dict[str, torch.Tensor], classes: str) -> tuple[str, int]:
    """(SHA-256, byte count) of the tensors' names, dtypes, shapes and bytes, in name order, and of the
    class names (their JSON text)."""
    digest = hashlib.sha256(classes.encode())
    total = 0
    for key in sorted(tensors):
        tensor = tensors[key].detach().cpu()
        data = tensor.reshape(-1).contiguous().view(torch.uint8).numpy()  # no copy when contiguous
        digest.update(f"\0{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0{data.nbytes}\0".encode())
        digest.update(data)
        total += data.nbytes
    return digest.hexdigest(), total


def cached(
    name: str, source: Path, decode: Callable[[], dict], on_note: Callable[[str], None] | None = None
) -> dict:
    """{"tensors": {...}, "classes": [...]} for `source`, from the cache or from `decode()`.

    A cache file that is there but cannot be used is decoded again, and `on_note` gets one line saying
    so, once the decoding has worked."""
    path = tensor_dir() / f"{name}-{fingerprint(source)}{SUFFIX}"
    problem = None
    if path.is_file():
        entry, problem = _read(path)
        if entry is not None:
            return entry
    entry = decode()
    _write(path, entry, source)
    if problem and on_note is not None:
        on_note(f"the cached {name} tensors in {path} {problem}; decoded {name} again")
    return entry


def _read(path: Path) -> tuple[dict | None, str | None]:
    """(entry, None) from an intact cache file, else (None, what is wrong with it)."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                if str(meta.get("format", "")).startswith("vitcli-data/"):
                    return None, f"were in an older cache format ({meta['format']}, without a checksum)"
                return None, "were damaged (no vitcli metadata)"
            missing = [key for key in ("classes", "sha256", "bytes") if key not in meta]
            if missing:
                return None, f"were damaged (no {', '.join(missing)} in the metadata)"
            names = f.keys()  # a safe_open handle is not iterable
            tensors = {key: f.get_tensor(key) for key in names}
        classes = json.loads(meta["classes"])
    except Exception as e:  # noqa: BLE001 - safetensors, JSON and OS errors alike mean a damaged file
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        return None, f"were damaged (cannot be read: {reason})"
    digest, total = checksum(tensors, meta["classes"])
    if str(total) != meta["bytes"]:
        return None, f"were damaged (size mismatch: {total} bytes of tensors, {meta['bytes']} written)"
    if digest != meta["sha256"]:
        return None, "were damaged (checksum mismatch)"
    return {"tensors": tensors, "classes": classes}, None


def _write(path: Path, entry: dict, source: Path) -> None:
    classes = json.dumps(entry["classes"])
    digest, total = checksum(entry["tensors"], classes)
    metadata = {
        "format": FORMAT,
        "classes": classes,
        "source": str(source),
        "sha256": digest,
        "bytes": str(total),
    }
    with contextlib.suppress(OSError):  # a read-only or full disk: decode again next time
        save_tensors(path, entry["tensors"], metadata)
