"""Bad input through the CLI: flags, config files, resume and names, output places, a full disk.

Every case checks the contract of README.md's "Errors" and "What survives what": a non-zero exit (1 for
what vitcli finds, 2 for what the parser rejects), no traceback, one line naming the problem, nothing
half-written, and an earlier good run left byte for byte as it was. Checkpoints and image folders are in
test_bad_input_files.py, which shares this module's fixture and checks.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from cli_helpers import plain_text
from fakedata import write_mnist
from typer.testing import CliRunner

from vitcli.cli import app

runner = CliRunner()
FULL = OSError(errno.ENOSPC, "No space left on device")


@dataclass
class Earlier:
    """A finished run that no bad command may touch, and the MNIST files it was trained on."""

    base: Path
    data: Path
    runs: Path
    run: Path
    files: dict[str, bytes | None]


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under `root` with its bytes (None for a folder), so that a new file counts as a change."""
    return {str(p.relative_to(root)): None if p.is_dir() else p.read_bytes() for p in root.rglob("*")}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: these runs are tiny, and two threads on a busy 2-core machine wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def earlier(tmp_path_factory) -> Earlier:
    base = tmp_path_factory.mktemp("earlier")
    home = tmp_path_factory.mktemp("earlier-home")
    with pytest.MonkeyPatch.context() as mp:  # the autouse isolation is per test; this runs before it
        mp.setenv("VITCLI_CACHE_DIR", str(home / "cache"))
        mp.setenv("VITCLI_DATA_DIR", str(home / "data"))
        data = write_mnist(base / "data")
        done = invoke("train", *options(data, base / "runs"), "--name", "good")
    assert done.exit_code == 0, done.output
    run = base / "runs" / "good"
    assert (run / "model.safetensors").is_file() and (run / "state.safetensors").is_file()
    return Earlier(base, data, base / "runs", run, snapshot(base))


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def options(data: Path, out: Path) -> list:
    return ["--data-dir", data, "--epochs", 1, "--batch-size", 64, "--device", "cpu", "--out", out]


def train(tmp_path: Path, earlier: Earlier, *extra):
    """`vitcli train` on the earlier run's data into tmp_path/runs; later options override these."""
    return invoke("train", *options(earlier.data, tmp_path / "runs"), *extra)


def check(result, code: int, phrase: str, tmp_path: Path, earlier: Earlier, absent=("runs",)) -> None:
    """The contract for one bad command; `absent` names what must not exist under tmp_path."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert phrase in plain_text(result.stderr), result.stderr
    if code == 1:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert_nothing_half_written(tmp_path, earlier)
    for name in absent:
        assert not (tmp_path / name).exists(), name
    assert snapshot(earlier.base) == earlier.files, "the earlier run or its data changed"


def assert_nothing_half_written(tmp_path: Path, earlier: Earlier) -> None:
    for root in (tmp_path, earlier.base, Path(os.environ["VITCLI_CACHE_DIR"])):
        assert not list(root.rglob(".*.tmp")), root


def fill(args, tmp_path: Path, earlier: Earlier) -> list[str]:
    """Arguments with {tmp}, {run}, {runs} and {data} replaced by this test's places."""
    places = {"tmp": tmp_path, "run": earlier.run, "runs": earlier.runs, "data": earlier.data}
    return [str(a).format(**places) for a in args]


def ids(cases) -> list[str]:
    """Each case's arguments, shortened, as its test id."""
    return [" ".join(getattr(case, "values", case)[0])[:40] for case in cases]


# (options after `vitcli train ...`, a phrase of the one-line error). All exit 1 and write nothing.
VITCLI_FINDS = [
    (["--epochs", "0"], "--epochs must be a positive whole number, got 0"),
    (["--batch-size", "0"], "--batch-size must be a positive whole number, got 0"),
    (["--batch-size", "-5"], "--batch-size must be a positive whole number, got -5"),
    (["--embed-dim", "0"], "--embed-dim must be a positive whole number, got 0"),
    (["--depth", "-1"], "--depth must be a positive whole number, got -1"),
    (["--heads", "0"], "--heads must be a positive whole number, got 0"),
    (["--patch-size", "0"], "--patch-size must be a positive whole number, got 0"),
    (["--mlp-dim", "-3"], "--mlp-dim must be a positive whole number, got -3"),
    (["--subset", "0"], "--subset must be a positive whole number, got 0"),
    (["--val-size", "-1"], "--val-size must be 0 or more, got -1"),
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--lr", "-1"], "--lr must be positive, got -1.0"),
    (["--warmup", "nan"], "--warmup must be a finite number, got nan"),
    (["--weight-decay", "inf"], "--weight-decay must be a finite number, got inf"),
    (["--label-smoothing", "1"], "--label-smoothing must be in [0, 1), got 1.0"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1), got 1.5"),
    (["--heads", "3"], "--embed-dim 32 is not divisible by --heads 3"),
    (["--patch-size", "5"], "mnist images are 28x28, not divisible by --patch-size 5"),
    (["--depth", "100000"], "--depth 100000 is more blocks than any ViT has"),
    (["--device", "cuda:7"], "--device cuda:7"),
    (["--dataset", "svhn"], "unknown dataset 'svhn'"),
    (["--dataset", "folder:"], "--dataset folder: needs a path"),
    (["--val-size", "100000"], "--val-size 100000 leaves no training images (600 in the training set)"),
    (["--subset", "100000"], "--subset 100000 is more than the 540 training images there are"),
    (["--resume", "{data}"], "--resume {data}: no run directory there (no config.toml)"),
    (["--resume", "{run}", "--lr", "0.5"], "--lr 0.5 would change it (it has 0.01)"),
    (["--resume", "{run}", "--seed", "3"], "--seed 3 would change it (it has 0)"),
    (["--resume", "{run}", "--out", "{tmp}/runs"], "--out {tmp}/runs would change it"),
    (["--resume", "{run}", "--config", "{run}/config.toml"], "leave out --config, --preset and --overwrite"),
    (["--resume", "{run}"], "--resume {run}: the run finished its 1 epochs; pass --epochs N"),
    (["--name", "../escape"], "--name must be a plain folder name (no / or ..), got '../escape'"),
    (["--name", "a/b"], "--name must be a plain folder name (no / or ..), got 'a/b'"),
    (["--name", "{tmp}/abs"], "--name must be a plain folder name (no / or ..), got '{tmp}/abs'"),
    (["--name", "x" * 300], "--name is 300 bytes long; use a name of at most 200 bytes"),
    (["--out", "{runs}", "--name", "good"], "{run} already holds a run; resume it with --resume"),
]


@pytest.mark.parametrize("args, message", VITCLI_FINDS, ids=ids(VITCLI_FINDS))
def test_train_refuses_with_one_line(tmp_path, earlier, args, message):
    [message] = fill([message], tmp_path, earlier)
    if args[0] == "--resume":  # a resumed run takes its settings from its directory
        result = invoke("train", *fill(args, tmp_path, earlier))
    else:
        result = train(tmp_path, earlier, *fill(args, tmp_path, earlier))
    check(result, 1, message, tmp_path, earlier)


USAGE = "'vitcli {} --help' for help"
PARSER_REJECTS = [
    (["train", "--out", "{tmp}/out", "--bogus"], "No such option: --bogus"),
    (["train", "--out", "{tmp}/out", "--model", "resnet"], "'resnet' is not one of 'vit', 'cnn'"),
    (["train", "--out", "{tmp}/out", "--pos-embed", "rope"], "'rope' is not one of 'learned', 'sinusoidal'"),
    (["train", "--out", "{tmp}/out", "--epochs", "five"], "Invalid value for '--epochs'"),
    (["train", "--out", "{tmp}/out", "--lr", "fast"], "Invalid value for '--lr'"),
    (["eval", "{run}", "--split", "bogus"], "'bogus' is not one of 'train', 'val', 'test'"),
    (["eval", "{run}", "--batch-size", "many"], "Invalid value for '--batch-size'"),
    (
        ["attention", "{run}", "--out", "{tmp}/out", "--head-fusion", "median"],
        "'median' is not one of 'mean', 'max', 'min'",
    ),
    (
        ["sweep", "--out", "{tmp}/out", "--mode", "cross", "--embed-dim", "8", "16"],
        "'cross' is not one of 'grid', 'zip'",
    ),
]


@pytest.mark.parametrize("args, message", PARSER_REJECTS, ids=ids(PARSER_REJECTS))
def test_the_parser_rejects_with_usage_and_exit_2(tmp_path, earlier, args, message):
    result = invoke(*fill(args, tmp_path, earlier))
    check(result, 2, message, tmp_path, earlier, absent=("out",))
    assert USAGE.format(args[0]) in plain_text(result.stderr)


CONFIGS = {
    "not TOML": ("this is [not toml\n", "is not valid TOML"),
    "unknown section": ("[optimizer]\nlr = 1\n", "c.toml: unknown section [optimizer]"),
    "a key outside a section": ("epochs = 3\n", "c.toml: unknown section [epochs]"),
    "unknown key": ("[train]\nlearning_rate = 1\n", "c.toml: [train]: unknown key 'learning_rate'"),
    "a word for a number": ('[train]\nepochs = "five"\n', "c.toml: [train] epochs must be int, got 'five'"),
    "a fraction for a size": ("[model]\nembed_dim = 3.5\n", "c.toml: [model] embed_dim must be int, got 3.5"),
    "a bool for a number": ("[train]\nepochs = true\n", "c.toml: [train] epochs must be int, got True"),
    "not UTF-8": (b"\xff\xfe\x00[train]", "c.toml cannot be read"),
    "a bad value": ("[model]\nheads = 3\n", "--embed-dim 32 is not divisible by --heads 3"),
}


@pytest.mark.parametrize("case", CONFIGS)
def test_a_bad_config_file_is_named(tmp_path, earlier, case):
    text, message = CONFIGS[case]
    config = tmp_path / "c.toml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    result = train(tmp_path, earlier, "--config", config)
    check(result, 1, message, tmp_path, earlier)


@pytest.mark.parametrize(
    "where, message",
    [("missing.toml", "config file {} does not exist"), ("", "config file {} is a directory")],
    ids=["missing", "a directory"],
)
def test_a_config_path_that_is_no_file(tmp_path, earlier, where, message):
    path = tmp_path / where
    result = train(tmp_path, earlier, "--config", path)
    check(result, 1, message.format(path), tmp_path, earlier)


def test_out_that_is_a_file(tmp_path, earlier):
    (tmp_path / "runs").write_text("a file where the runs should go")
    result = train(tmp_path, earlier, "--name", "x")
    check(result, 1, f"cannot create run directory {tmp_path / 'runs' / 'x'}", tmp_path, earlier, absent=())
    assert (tmp_path / "runs").read_text() == "a file where the runs should go"


def test_out_under_a_file(tmp_path, earlier):
    (tmp_path / "file").write_text("x")
    result = train(tmp_path, earlier, "--out", tmp_path / "file" / "runs", "--name", "x")
    check(result, 1, "choose another --out", tmp_path, earlier)
    assert "cannot create run directory" in result.stderr and (tmp_path / "file").read_text() == "x"


def test_sweep_out_that_is_a_file(tmp_path, earlier):
    (tmp_path / "sweeps").write_text("x")
    args = ["sweep", *options(earlier.data, tmp_path / "sweeps"), "--embed-dim", 8, 16, "--name", "s"]
    result = invoke(*args)
    check(result, 1, f"cannot create sweep directory {tmp_path / 'sweeps' / 's'}", tmp_path, earlier, ())
    assert (tmp_path / "sweeps").read_text() == "x"


def test_attention_out_that_is_a_file(tmp_path, earlier):
    (tmp_path / "pics").write_text("x")
    args = [
        "attention",
        earlier.run,
        "--data-dir",
        earlier.data,
        "--device",
        "cpu",
        "--out",
        tmp_path / "pics",
    ]
    check(invoke(*args), 1, f"cannot write {tmp_path / 'pics'}", tmp_path, earlier, absent=())
    assert (tmp_path / "pics").read_text() == "x"


def test_a_run_directory_held_by_another_process(tmp_path, earlier):
    fcntl = pytest.importorskip("fcntl")
    with open(earlier.run / ".lock", "a+") as held:  # what a running `vitcli train` holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = train(tmp_path, earlier, "--out", earlier.runs, "--name", "good", "--overwrite")
    check(result, 1, f"the run directory {earlier.run} is in use by process", tmp_path, earlier)


def full_disk_for_checkpoints(monkeypatch) -> None:
    """safetensors' save_file fails as it does on a full disk: its own error, not an OSError (the real
    disk: tests/test_full_disk.py)."""
    from safetensors import SafetensorError

    def save_file(*args, **kwargs):
        raise SafetensorError(f"I/O error: {FULL.strerror} (os error {FULL.errno})")

    monkeypatch.setattr("vitcli.runtime.tensor_files.save_file", save_file)


def test_a_full_disk_mid_run_keeps_the_last_finished_epoch(tmp_path, earlier, monkeypatch):
    assert train(tmp_path, earlier, "--name", "r").exit_code == 0
    run = tmp_path / "runs" / "r"
    before = snapshot(run)
    full_disk_for_checkpoints(monkeypatch)
    result = train(tmp_path, earlier, "--resume", run, "--epochs", 2)
    check(result, 1, f"cannot write {run}/", tmp_path, earlier, absent=())
    assert ".safetensors: No space left on device" in result.stderr
    after = snapshot(run)
    for name in ("model.safetensors", "last.safetensors", "state.safetensors"):
        assert after[name] == before[name], name
    assert b"epochs = 2" in after["config.toml"]  # the run as now set up: resuming it needs no options
    assert after["metrics.jsonl"].startswith(before["metrics.jsonl"])
    monkeypatch.undo()  # space freed: --resume goes on from the last finished epoch
    assert train(tmp_path, earlier, "--resume", run, "--epochs", 2).exit_code == 0
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_a_full_disk_at_a_new_runs_first_checkpoint(tmp_path, earlier, monkeypatch):
    full_disk_for_checkpoints(monkeypatch)
    result = train(tmp_path, earlier, "--name", "new")
    run = tmp_path / "runs" / "new"
    check(result, 1, f"cannot write {run}/", tmp_path, earlier, absent=())
    assert ".safetensors: No space left on device" in result.stderr
    assert "[model]" in (run / "config.toml").read_text() and not (run / "model.safetensors").exists()


def full_disk_for_text(monkeypatch, prefix: str) -> None:
    """Path.write_text, which vitcli.runtime.files.atomic_write_text calls on its temporary file
    `.NAME.*.tmp`, fails for temporary files of names starting with `prefix`."""
    write_text = Path.write_text

    def refusing(self, *args, **kwargs):
        if self.name.startswith(prefix) and self.name.endswith(".tmp"):
            raise OSError(FULL.errno, FULL.strerror)
        return write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", refusing)


def test_a_full_disk_when_the_config_is_written(tmp_path, earlier, monkeypatch):
    full_disk_for_text(monkeypatch, ".config.toml.")
    result = train(tmp_path, earlier, "--name", "new")
    run = tmp_path / "runs" / "new"
    check(result, 1, f"cannot write {run / 'config.toml'}: No space left on device", tmp_path, earlier, ())
    assert {p.name for p in run.iterdir()} <= {".lock"}


def test_a_full_disk_when_sweep_results_are_written(tmp_path, earlier, monkeypatch):
    full_disk_for_text(monkeypatch, ".results.")
    args = ["sweep", *options(earlier.data, tmp_path / "sweeps"), "--embed-dim", 8, 16, "--name", "s"]
    result = invoke(*args)
    sweep = tmp_path / "sweeps" / "s"
    check(
        result, 1, f"cannot write {sweep / 'results.jsonl'}: No space left on device", tmp_path, earlier, ()
    )
    assert not (sweep / "results.jsonl").exists() and not (sweep / "results.csv").exists()
    [finished] = [p for p in sweep.iterdir() if p.is_dir()]  # the run that ended keeps its files
    assert (finished / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["train", "--out", "{tmp}/runs", "--model", "resnet"], 2, "'resnet' is not one of 'vit', 'cnn'"),
        (["eval", "{tmp}/c.safetensors"], 1, "is not a safetensors file"),
    ],
    ids=["parser", "vitcli"],
)
def test_a_real_process_prints_no_traceback(tmp_path, earlier, args, code, message):
    """CliRunner keeps an escaped exception's traceback to itself; a real process would print it."""
    (tmp_path / "c.safetensors").write_text("not a checkpoint")
    argv = [sys.executable, "-m", "vitcli", *fill(args, tmp_path, earlier)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert done.returncode == code and "Traceback" not in done.stderr, done.stderr
    assert message in plain_text(done.stderr)
    if code == 1:
        assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists() and snapshot(earlier.base) == earlier.files
