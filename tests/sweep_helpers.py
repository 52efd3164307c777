"""What tests/test_sweep.py and tests/test_sweep_results.py share: the command line and a small sweep."""

from cli_helpers import run


def sweep(tmp_path, data_dir, *extra):
    """A sweep small enough for a test: 200 training images, 1 epoch, 60 for validation."""
    return run(
        "sweep",
        "--data-dir",
        data_dir,
        "--subset",
        200,
        "--val-size",
        60,
        "--epochs",
        1,
        "--batch-size",
        32,
        "--device",
        "cpu",
        "--out",
        tmp_path / "sweeps",
        *extra,
    )


def only_sweep_dir(tmp_path):
    [sweep_dir] = (tmp_path / "sweeps").iterdir()
    return sweep_dir
