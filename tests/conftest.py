from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from fakedata import write_cifar10, write_mnist

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
