"""The on-disk cache of decoded data sets: one safetensors file of uint8 tensors per source.

The key is a fingerprint of the source files (names, sizes, modification times), so a changed folder
is decoded again. The cache is only an optimisation: if it cannot be written (read-only home, full disk)
the data is decoded again next time and nothing fails.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from safetensors.torch import load_file, safe_open, save_file

from vitcli.files import atomic_write

FORMAT = "vitcli-data/1"


def cache_root() -> Path:
    """$VITCLI_CACHE_DIR, else $XDG_CACHE_HOME/vitcli, else ~/.cache/vitcli."""
    if os.environ.get("VITCLI_CACHE_DIR"):
        return Path(os.environ["VITCLI_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "vitcli"


def fingerprint(source: Path) -> str:
    digest = hashlib.sha256(str(source.resolve()).encode())
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        for name in sorted(filenames):
            stat = os.stat(os.path.join(dirpath, name))
            relpath = os.path.relpath(os.path.join(dirpath, name), source)
            digest.update(f"{relpath}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cached(name: str, source: Path, decode: Callable[[], dict]) -> dict:
    """{"tensors": {...}, "classes": [...]} for `source`, from the cache or from `decode()`."""
    path = cache_root() / "tensors" / f"{name}-{fingerprint(source)}.safetensors"
    if path.is_file():
        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            if meta.get("format") == FORMAT:
                return {"tensors": load_file(str(path)), "classes": json.loads(meta["classes"])}
        except Exception:  # noqa: BLE001 - a damaged cache file is decoded again, not an error
            pass
    entry = decode()
    try:
        metadata = {"format": FORMAT, "classes": json.dumps(entry["classes"]), "source": str(source)}
        atomic_write(path, lambda tmp: save_file(entry["tensors"], str(tmp), metadata=metadata))
    except OSError:
        pass
    return entry
