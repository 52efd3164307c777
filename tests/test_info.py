"""`vitcli info` (versions, device, data and caches), `vitcli cache clear`, and `--pretrained imagenet|dino`
answering within seconds when the Hugging Face hub cannot be reached (models/pretrained.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import timm
import torch
from cli_helpers import run
from fakedata import write_cifar10, write_mnist
from safetensors.torch import save_file
from timm_helpers import random_state_dict

from vitcli.cli.tables import fmt_bytes
from vitcli.data import cache
from vitcli.data.datasets import load_splits
from vitcli.models.pretrained import hub_tag
from vitcli.settings.config import DataConfig

REPO = Path(__file__).resolve().parents[1]


def load(data_dir: Path, dataset: str = "mnist") -> None:
    load_splits(DataConfig(dataset=dataset, data_dir=str(data_dir), val_size=0), download=False)


def info_json(*args) -> dict:
    result = run("info", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert result.output.startswith("error: "), result.output
    return result.output.strip()


# --- vitcli info --------------------------------------------------------------------------------------


def test_info_shows_mnist_present_and_the_cache_size_after_a_load(tmp_path, monkeypatch):
    data = write_mnist(tmp_path / "a [folder] with a long name to fold" / "data", train=60, test=20)
    monkeypatch.setenv("VITCLI_DATA_DIR", str(data))
    before = info_json()
    assert before["data_dir"] == str(data)
    assert before["datasets"][0] == {"name": "mnist", "files": "present", "cached": False}
    assert {d["name"]: d["files"] for d in before["datasets"][1:]} == {
        "fashion-mnist": "missing",
        "cifar10": "missing",
        "cifar100": "missing",
    }
    assert (before["cache_files"], before["cache_bytes"]) == (0, 0)
    assert before["versions"]["torch"] == torch.__version__ and before["versions"]["timm"] == timm.__version__
    assert set(before["versions"]) == {"vitcli", "Python", "torch", "torchvision", "timm"}
    assert before["device"] == ("cuda" if torch.cuda.is_available() else "cpu")

    load(data)
    after = info_json()
    files = sorted(cache.tensor_dir().glob("mnist-*.safetensors"))
    assert len(files) == 1 and after["cache_dir"] == str(cache.tensor_dir())
    assert (after["cache_files"], after["cache_bytes"]) == (1, files[0].stat().st_size)
    assert after["datasets"][0]["cached"] is True

    table = run("info")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in table.stdout, table.stdout
    assert any("mnist: present, cached" in line for line in lines), table.stdout
    assert any("cifar10: not there" in line for line in lines), table.stdout
    assert fmt_bytes(after["cache_bytes"]) in table.stdout
    folded = "".join(line.strip(" │") for line in lines)  # a long path is folded over lines, never cut
    assert str(data).replace(" ", "") in folded.replace(" ", "")


def test_info_data_dir_option_an_incomplete_data_set_and_a_file_given_as_the_folder(tmp_path):
    data = write_cifar10(tmp_path / "data", per_batch=10, test=10)
    (data / "cifar-10-batches-py" / "data_batch_3").unlink()
    found = info_json("--data-dir", data)
    assert {d["name"]: d["files"] for d in found["datasets"]}["cifar10"] == "incomplete"
    assert {d["name"]: d["files"] for d in found["datasets"]}["mnist"] == "missing"
    assert "cifar10: some files missing" in run("info", "--data-dir", data).stdout

    missing = info_json("--data-dir", tmp_path / "nowhere")
    assert missing["data_dir_exists"] is False
    assert "(not there yet)" in run("info", "--data-dir", tmp_path / "nowhere").stdout

    (tmp_path / "file").write_text("x")
    line = one_error_line(run("info", "--data-dir", tmp_path / "file"))
    assert "is a file" in line and str(tmp_path / "file") in line


def test_info_names_the_gpus_that_auto_picks(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Test GPU 80GB")
    found = info_json()
    assert (found["device"], found["gpus"]) == ("cuda", ["Test GPU 80GB", "Test GPU 80GB"])
    assert "cuda: 2 x Test GPU 80GB" in run("info").stdout


# --- vitcli cache clear -------------------------------------------------------------------------------


def test_cache_clear_removes_the_tensor_files_and_says_how_much_it_freed(tmp_path):
    mnist = write_mnist(tmp_path / "mnist", train=60, test=20)
    cifar = write_cifar10(tmp_path / "cifar", per_batch=10, test=10)
    load(mnist)
    load(cifar, "cifar10")
    folder = cache.tensor_dir()
    finished = sorted(folder.glob("*.safetensors"))
    assert len(finished) == 2
    stale = folder / ".mnist-0123.safetensors.abcd.tmp"  # left by a killed process an hour ago
    stale.write_bytes(b"x" * 1000)
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    fresh = folder / ".cifar10-4567.safetensors.efgh.tmp"  # maybe being written by another vitcli now
    fresh.write_bytes(b"y" * 10)
    (folder / "notes.txt").write_text("not the cache's")
    freed = sum(p.stat().st_size for p in finished) + 1000

    result = run("cache", "clear")
    assert result.exit_code == 0, result.output
    assert f"removed 3 files, {fmt_bytes(freed)} from {folder}" in " ".join(result.stdout.split())
    assert "kept 1 temporary file" in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == [fresh.name, "notes.txt"]
    assert (mnist / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()  # the data stays
    assert (cifar / "cifar-10-batches-py" / "data_batch_1").is_file()
    found = info_json("--data-dir", mnist)
    assert (found["cache_files"], found["cache_bytes"], found["datasets"][0]["cached"]) == (0, 0, False)

    again = run("cache", "clear")
    assert again.exit_code == 0 and "the cache is already empty" in again.stdout, again.output
    load(mnist)  # and the next run decodes again, into a new cache file
    assert len(list(folder.glob("mnist-*.safetensors"))) == 1


def test_cache_clear_without_a_cache_and_with_a_file_in_its_place(tmp_path, monkeypatch):
    monkeypatch.setenv("VITCLI_CACHE_DIR", str(tmp_path / "never-used"))
    result = run("cache", "clear")
    assert result.exit_code == 0 and "the cache is already empty" in result.stdout, result.output
    assert not (tmp_path / "never-used").exists()

    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "tensors").write_text("a file where the folder belongs")
    monkeypatch.setenv("VITCLI_CACHE_DIR", str(tmp_path / "odd"))
    line = one_error_line(run("cache", "clear"))
    assert "is a file, not a folder" in line and "VITCLI_CACHE_DIR" in line
    assert (tmp_path / "odd" / "tensors").is_file()
    bare = run("cache")  # no subcommand: the help (exit 2 with Click 8.2, 0 before)
    assert bare.exit_code in (0, 2) and "clear" in bare.output and "Traceback" not in bare.output


# --- the Hugging Face hub: fail fast when it cannot be reached, say what downloads when it can ---------

# `vitcli ARGS` in a fresh interpreter, timing the command alone (not Python's start and the imports,
# which take seconds on a busy machine) into the file $TIMED_TO.
TIMED = """
import os, sys, time
from vitcli.cli import main
start = time.perf_counter()
try:
    sys.argv = ["vitcli", *sys.argv[1:]]
    main()
finally:
    open(os.environ["TIMED_TO"], "w").write(str(time.perf_counter() - start))
"""


def hub_run(tmp_path, endpoint: str, *args) -> tuple[subprocess.CompletedProcess, float]:
    """`vitcli ARGS` with the hub at `endpoint`, HF_HUB_OFFLINE unset and the hub's cache in tmp_path/hf;
    the finished process and the command's own seconds."""
    drop = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=endpoint, PYTHONPATH=str(REPO / "src"))
    env.update(OMP_NUM_THREADS="1", TIMED_TO=str(tmp_path / "seconds"), HF_HUB_DISABLE_PROGRESS_BARS="1")
    done = subprocess.run(
        [sys.executable, "-c", TIMED, *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    return done, float((tmp_path / "seconds").read_text())


def small_finetune(tmp_path, data_dir, *extra) -> list:
    return [
        *("finetune", "--model", "test_vit", "--pretrained", "imagenet", "--freeze", "backbone"),
        *("--img-size", 32, "--patch-size", 8, "--data-dir", data_dir, "--subset", 32, "--val-size", 16),
        *("--epochs", 1, "--batch-size", 16, "--device", "cpu", "--out", tmp_path / "runs", "--name", "hub"),
        *extra,
    ]


def loaded(tmp_path, saved: dict) -> bool:
    from safetensors.torch import load_file

    got = load_file(str(tmp_path / "runs" / "hub" / "model.safetensors"))
    return all(torch.equal(got[f"model.{k}"], saved[k]) for k in ("blocks.0.attn.qkv.weight", "cls_token"))


needs_test_vit = pytest.mark.skipif(not timm.is_model("test_vit"), reason="this timm has no test_vit")


def test_an_unreachable_hub_answers_in_seconds_with_one_line(tmp_path):
    data = write_mnist(tmp_path / "data", train=96, test=16)
    # Port 9 (discard) on this machine: nothing listens, so every connection is refused. Before the
    # check, huggingface_hub retried this for 45 s (2+4+8+8 s of backoff, for each of two files).
    done, seconds = hub_run(
        tmp_path, "http://127.0.0.1:9", "finetune", "--pretrained", "dino", "--data-dir", data,
        "--out", tmp_path / "runs", "--device", "cpu",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr + done.stdout
    line = done.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line, line
    assert line.startswith("error: could not fetch timm's vit_small_patch16_224.dino weights"), line
    assert "http://127.0.0.1:9 cannot be reached" in line and "--pretrained FILE" in line
    assert seconds < 10, f"{seconds:.1f} s to say the hub cannot be reached"
    assert not (tmp_path / "runs").exists()


@needs_test_vit
def test_weights_in_the_hub_cache_need_no_hub_even_without_hf_hub_offline(tmp_path):
    tag = hub_tag("test_vit", "imagenet")
    saved = random_state_dict("test_vit")
    repo = tmp_path / "hf" / "hub" / f"models--timm--{tag}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    save_file(saved, str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
    data = write_mnist(tmp_path / "data", train=96, test=16)
    done, seconds = hub_run(tmp_path, "http://127.0.0.1:9", *small_finetune(tmp_path, data))
    assert done.returncode == 0, done.stderr + done.stdout
    assert loaded(tmp_path, saved) and "downloading" not in done.stdout
    assert seconds < 30, f"{seconds:.1f} s"  # no retries: the hub's HEAD fails once, then the cache


class FakeHub(BaseHTTPRequestHandler):
    """The two answers huggingface_hub needs to download one file: HEAD (commit, ETag, size) and GET."""

    files: dict[str, bytes] = {}

    def do_HEAD(self):  # noqa: N802 - http.server's name
        self.answer(body=False)

    def do_GET(self):  # noqa: N802
        self.answer(body=True)

    def answer(self, body: bool) -> None:
        data = self.files.get(self.path)
        self.send_response(200 if data is not None else 404)
        if data is None:
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_header("X-Repo-Commit", "1" * 40)
        self.send_header("ETag", '"fake-etag"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):  # quiet
        pass


@needs_test_vit
def test_weights_that_download_say_so_first_with_their_size(tmp_path):
    tag = hub_tag("test_vit", "imagenet")
    saved = random_state_dict("test_vit")
    save_file(saved, str(tmp_path / "model.safetensors"))
    data = (tmp_path / "model.safetensors").read_bytes()
    FakeHub.files = {f"/timm/{tag}/resolve/main/model.safetensors": data}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        mnist = write_mnist(tmp_path / "data", train=96, test=16)
        done, _ = hub_run(
            tmp_path, f"http://127.0.0.1:{server.server_port}", *small_finetune(tmp_path, mnist)
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr + done.stdout
    said = " ".join(done.stdout.split())
    assert f"downloading {tag} weights ({len(data) / 1e6:.1f} MB) from the Hugging Face hub" in said, said
    assert loaded(tmp_path, saved)
    assert list((tmp_path / "hf" / "hub").glob(f"models--timm--{tag}/snapshots/*/model.safetensors"))
