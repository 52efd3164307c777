from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from fakedata import write_cifar10, write_mnist

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Under pytest-xdist (`-n N`: pyproject.toml's addopts), each worker gets its share of the cores, and the
# processes its tests start inherit it: N workers that each use every core slow each other down many times.
if os.environ.get("PYTEST_XDIST_WORKER"):
    _threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    torch.set_num_threads(_threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(_threads))


@pytest.fixture(autouse=True)
def isolated(tmp_path_factory, monkeypatch):
    """Each test gets its own tensor cache and default data dir, and never the user's."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("VITCLI_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("VITCLI_DATA_DIR", str(home / "data"))
    torch.manual_seed(0)


@pytest.fixture
def mnist_dir(tmp_path) -> Path:
    return write_mnist(tmp_path / "data")


@pytest.fixture
def cifar10_dir(tmp_path) -> Path:
    return write_cifar10(tmp_path / "data")


def shared_mnist() -> Path | None:
    root = Path(os.environ.get("VITCLI_SHARED_DATA", SHARED_DATA))
    return root if (root / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file() else None


@pytest.fixture
def small_disk(tmp_path):
    """A real 96 KiB tmpfs, a full disk for a model of 28k parameters (root only: skipped where it cannot
    be mounted), unmounted afterwards. `remount_read_only(small_disk)` makes it read-only."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"a tmpfs cannot be mounted here: {done.stderr.decode().strip() or 'not root'}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def remount_read_only(mount: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)


@pytest.fixture
def mnist_run(tmp_path, mnist_dir):
    """A one-epoch ViT of 2 blocks and 2 heads on fake MNIST: runs/vit (attention's tests)."""
    from cli_helpers import run

    result = run(
        "train",
        "--data-dir",
        mnist_dir,
        "--epochs",
        1,
        "--batch-size",
        64,
        "--device",
        "cpu",
        "--heads",
        2,
        "--depth",
        2,
        "--embed-dim",
        16,
        "--out",
        tmp_path / "runs",
        "--name",
        "vit",
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "runs" / "vit"
