"""Learning on the real MNIST (skipped where ../shared/data is not there)."""

import pytest
from conftest import shared_mnist

from vitcli.settings.config import load_config
from vitcli.training.run import train_run

pytestmark = pytest.mark.skipif(shared_mnist() is None, reason="the real MNIST is not in ../shared/data")


def test_classic_vit_reaches_95_percent_in_two_epochs_on_cpu(tmp_path):
    # The classic teaching configuration: dim 32, patch 7, 2 blocks (27,978 parameters).
    cfg = load_config(
        None,
        {
            "model": {"embed_dim": 32, "patch_size": 7, "depth": 2, "heads": 2},
            "data": {"dataset": "mnist", "data_dir": str(shared_mnist())},
            "train": {"epochs": 2, "batch_size": 128, "lr": 1e-2, "device": "cpu"},
            "run": {"out": str(tmp_path)},
        },
    )
    result = train_run(cfg)
    assert result.test.count == 10_000
    assert result.test.accuracy >= 0.95, f"test accuracy {result.test.accuracy:.4f}"
