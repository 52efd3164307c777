"""What tests/test_resume.py and tests/test_run_dir.py share: the command line, settings and tensor checks."""

from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]


def single_thread():
    """Runs compared tensor for tensor must use the same number of threads (a sum over two threads is
    rounded differently from one over one); the subprocesses here run with OMP_NUM_THREADS=1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def settings(data_dir, out, **train):
    # Dropout and augmentation on, so that the generators' states matter.
    return {
        "model": {"embed_dim": 16, "heads": 2, "dropout": 0.1},
        "data": {"data_dir": str(data_dir), "val_size": 100},
        "train": {"epochs": 3, "batch_size": 32, "device": "cpu", **train},
        "run": {"out": str(out)},
    }


def tensors(path):
    return load_file(str(path))


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
