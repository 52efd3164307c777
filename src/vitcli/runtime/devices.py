"""Which device a run uses, its mixed precision, and its peak memory."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch

from vitcli.errors import ConfigError

AUTO = "auto"  # --precision and autocast_dtype: `resolve_precision`'s rule


def resolve_device(name: str) -> torch.device:
    """'auto' is the GPU when PyTorch sees one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: PyTorch sees no CUDA GPU here; use --device cpu (or auto)")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: there are only {torch.cuda.device_count()} GPUs (cuda:0..)")
        return device
    return torch.device(name)


def auto_dtype(device: torch.device) -> torch.dtype | None:
    """AUTO's autocast dtype where the model kind is not known (callers of fit and evaluate): bfloat16 on
    CUDA, none (float32) on the CPU. A run knows its kind and resolves --precision itself."""
    return precision_dtype(resolve_precision(AUTO, device, kind=""))


def autocast(device: torch.device, dtype: torch.dtype | str | None = AUTO):
    """Mixed precision for a forward pass (AUTO: `auto_dtype`)."""
    if dtype == AUTO:
        dtype = auto_dtype(device)
    enabled = dtype not in (None, torch.float32)  # float32 is no autocast at all (and the CPU's warns)
    return torch.autocast(device.type, dtype=dtype if enabled else None, enabled=enabled)


# Model kinds whose CPU training step bfloat16 autocast makes faster on a CPU with native bf16: the CNN's
# step ran 1.98x faster on an AVX512-BF16 CPU, the small ViTs' 0.32-1.01x (their casts cost more than
# their small matrix products save); docs/performance.md, "Precision on the CPU".
BF16_ON_CPU = ("cnn",)


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX, from Linux's /proc/cpuinfo);
    without it PyTorch emulates bfloat16 and autocast only slows training down."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: unknown, so not assumed
        return False
    lines = (line for line in text.splitlines() if line.startswith("flags"))
    flags = next(lines, ":").split(":", 1)[1].split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name: str, device: torch.device, kind: str) -> str:
    """--precision auto|fp32|bf16 for a model of `kind` on `device`: "fp32" or "bf16". auto is bf16 on
    CUDA (as fast as float16 on current GPUs, and no loss scaling), and on a CPU with native bf16 for the
    kinds in BF16_ON_CPU; fp32 elsewhere, where bfloat16 is emulated and slower."""
    if name != AUTO:
        return name
    if device.type == "cuda" or (device.type == "cpu" and native_bf16() and kind in BF16_ON_CPU):
        return "bf16"
    return "fp32"


def precision_dtype(name: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision ("fp32": no autocast)."""
    return torch.bfloat16 if name == "bf16" else None


def peak_memory_bytes(device: torch.device) -> int | None:
    """Peak GPU memory allocated by PyTorch; on the CPU, the process's peak resident memory."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, kilobytes on Linux
