"""What tests/test_resume.py and tests/test_run_dir.py share: the command line, settings and tensor checks."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]


def single_thread():
    """Runs compared tensor for tensor must use the same number of threads (a sum over two threads is
    rounded differently from one over one); the subprocesses here run with OMP_NUM_THREADS=1, and so does
    this process's vitcli, which takes it as the most threads it may choose (runtime/threads.py)."""
    threads, given = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if given is None:
        del os.environ["OMP_NUM_THREADS"]
    else:
        os.environ["OMP_NUM_THREADS"] = given


def settings(data_dir, out, **train):
    # Dropout and augmentation on, so that the generators' states matter.
    return {
        "model": {"embed_dim": 16, "heads": 2, "dropout": 0.1},
        "data": {"data_dir": str(data_dir), "val_size": 100},
        # One thread, fixed: runs compared bit for bit must not follow the load.
        "train": {"epochs": 3, "batch_size": 32, "device": "cpu", "threads": 1, **train},
        "run": {"out": str(out)},
    }


# Every small-data lever on at a usual strength (mixing off for the last epoch of three).
LEVERS = {
    "data": {"randaugment": 9, "erase": 0.25, "mixup": 0.8, "cutmix": 1.0, "mix_off_epochs": 1},
    "train": {"drop_path": 0.1, "ema": 0.9, "clip_grad": 1.0},
}


def with_levers(values: dict, levers: dict) -> dict:
    """`settings(...)` with the sections of `levers` merged in."""
    return {section: {**items, **levers.get(section, {})} for section, items in values.items()}


def tensors(path):
    return load_file(str(path))


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def installed_wheel(tmp_path: Path) -> tuple[Path, Path]:
    """(vitcli's wheel, the folder it is installed in): built from a copy of the source (setuptools writes
    build files beside it) and installed with `pip --target` into a folder of its own, for the tests that
    read what the package carries from an installed copy."""
    source = tmp_path / "source"
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
        check=True,
    )
    wheel = next((tmp_path / "dist").glob("vitcli-*.whl"))
    target = tmp_path / "installed"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return wheel, target
