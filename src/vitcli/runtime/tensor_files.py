"""safetensors files written atomically, with safetensors' own errors as the OSError they are.

safetensors reports a full disk as `SafetensorError("I/O error: No space left on device (os error 28)")`,
not as an OSError: without this, `files.writing` would not see it, and a full disk during training (or
in a sweep) would end in a traceback instead of one line naming the file.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import save_file
from torch import Tensor

from vitcli.runtime.files import atomic_write


def save_tensors(
    path: str | Path, tensors: dict[str, Tensor], metadata: dict[str, str] | None = None
) -> None:
    """`save_file(tensors, path, metadata)` to a temporary file renamed over `path`."""

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as e:
            raise as_os_error(e) from None

    atomic_write(path, write)


def as_os_error(error: Exception) -> OSError:
    """The OSError behind a library's I/O error: its "(os error N)" when the message gives it."""
    message = str(error)
    found = re.search(r"\(os error (\d+)\)", message)
    code = int(found[1]) if found else errno.EIO
    reason = re.sub(r"^I/O error: | \(os error \d+\)$", "", message).strip() or "I/O error"
    return OSError(code, reason)
