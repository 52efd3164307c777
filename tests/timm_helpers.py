"""What tests/test_finetune.py and tests/test_pretrained.py share: timm weights with random values, a
small finetune run, and reading its output. A test module takes the fixtures by assigning them to names
of its own (`data_dir = timm_helpers.data_dir`); `one_thread` is then autouse for every test there.
"""

from pathlib import Path

import pytest
import timm
import torch
from fakedata import write_mnist
from safetensors.torch import load_file
from typer.testing import CliRunner

from vitcli.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def one_thread():
    """These steps are a few milliseconds of work each. With two threads on a 2-core machine shared with
    other jobs, OpenMP's spinning threads made the same finetune run's training take 9.7 s instead of
    0.1 s (measured); one thread keeps the tests quick wherever they run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return write_mnist(tmp_path / "data", train=96, test=16)


def random_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Random values under timm's key names and shapes for `name`, as a published checkpoint has them."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in timm.create_model(name).state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    return {k: torch.randn(shape, generator=generator) for k, shape in shapes.items()}


def finetune(tmp_path, data_dir, *extra):
    args = [
        "finetune",
        "--data-dir",
        data_dir,
        "--img-size",
        32,
        "--patch-size",
        8,
        "--subset",
        32,
        "--val-size",
        16,
        "--epochs",
        1,
        "--batch-size",
        16,
        "--device",
        "cpu",
        "--out",
        tmp_path / "runs",
        *extra,
    ]
    return runner.invoke(app, [str(a) for a in args])


def error_line(output: str) -> str:
    """The one `error:` line of a failed command (progress lines such as "loading mnist" may precede it)."""
    assert "Traceback" not in output, output
    errors = [line for line in output.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and output.strip().endswith(errors[0]), output
    return errors[0]


def checkpoint_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return {k.removeprefix("model."): v for k, v in load_file(str(run_dir / "model.safetensors")).items()}
