"""`vitcli export`: timm folders that timm itself loads with the same logits, ONNX files whose outputs
match PyTorch's under onnxruntime, the variants timm cannot hold refused in one line, and no export
overwritten unless asked.

One ViT is trained through the CLI and one timm `test_vit` fine-tuned (once per module); the variants
are saved from them with random weights (every parameter, so a weight left behind or a LayerNorm eps
that differs would show in the logits).
"""

import dataclasses
import json
import os
import subprocess
import sys
import time
from subprocess import PIPE

import numpy as np
import pytest
import timm
import timm_helpers
import torch
from cli_helpers import plain_text, run, train
from fakedata import write_mnist
from PIL import Image
from timm_helpers import error_line

from vitcli.errors import ConfigError, OutputError
from vitcli.lab.exporter import export_checkpoint
from vitcli.models.build import build_module
from vitcli.models.built import Built
from vitcli.settings.specs import CNNSpec
from vitcli.training.checkpoint import load_checkpoint, save_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

one_thread = timm_helpers.one_thread  # autouse: these models are tiny, two threads only contend


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A trained in-house ViT (runs/vit) and a timm test_vit fine-tune (runs/tuned), made once."""
    root = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:  # what conftest's `isolated` does for each test
        mp.setenv("VITCLI_CACHE_DIR", str(root / "cache"))
        mp.setenv("VITCLI_DATA_DIR", str(root / "cache-data"))
        data = write_mnist(root / "data", train=96, test=16)
        trained = train(
            root, data, "--embed-dim", 8, "--depth", 1, "--subset", 64, "--val-size", 16, "--name", "vit"
        )
        assert trained.exit_code == 0, trained.output
        tuned = timm_helpers.finetune(
            root, data, "--model", "test_vit", "--pretrained", "none", "--name", "tuned"
        )
        assert tuned.exit_code == 0, tuned.output
    return root / "runs"


def variant(runs, tmp_path, name, **fields):
    """A checkpoint of the trained ViT's config with `fields` changed (model="cnn": the CNN), every
    parameter of a ViT drawn at random."""
    base = load_checkpoint(runs / "vit")
    spec = (
        CNNSpec() if fields.pop("model", None) == "cnn" else dataclasses.replace(base.config.model, **fields)
    )
    module = build_module(spec, base.info)
    if spec.kind == "vit":
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for p in module.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
    path = tmp_path / name / "model.safetensors"
    config = dataclasses.replace(base.config, model=spec)
    save_checkpoint(path, Built(spec, module, base.preprocessing), config, base.info, {})
    return path.parent


def images(n=3, channels=1, size=28):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(n))


def exported(*args):
    result = run("export", *args)
    assert result.exit_code == 0, result.output
    return result.output


def load_timm(folder):
    return timm.create_model(f"local-dir:{folder}", pretrained=True).eval()


@pytest.mark.parametrize(
    "fields",
    [
        {},  # the trained ViT: patch tokenizer, [CLS], learned positions, two heads
        {"pool": "gap", "pos_embed": "sinusoidal", "heads": 1},
        {"pos_embed": "none", "embed_dim": 6, "heads": 3, "mlp_dim": 10},
    ],
    ids=["cls-learned", "gap-sinusoidal-single-head", "no-positions-odd-mlp"],
)
def test_timm_folder_loads_in_timm_with_vitcli_logits_and_preprocessing(runs, tmp_path, fields):
    run_dir = variant(runs, tmp_path, "v", **fields) if fields else runs / "vit"
    out = tmp_path / "timm-export"
    output = exported(run_dir, "--format", "timm", "--out", out)
    assert f"wrote {out}" in output and f'timm.create_model("local-dir:{out}", pretrained=True)' in output
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]

    checkpoint = load_checkpoint(run_dir)
    model = load_timm(out)
    x = images()
    with torch.no_grad():
        assert torch.allclose(model(x), checkpoint.model(x), atol=1e-5, rtol=0)
    data_config = timm.data.resolve_data_config({}, model=model)
    assert data_config["input_size"] == (1, 28, 28)
    assert data_config["mean"] == pytest.approx(checkpoint.preprocessing.mean)
    assert data_config["std"] == pytest.approx(checkpoint.preprocessing.std)
    assert model.pretrained_cfg["label_names"] == checkpoint.info.classes
    # timm's own transform of a picture gives the input vitcli's preprocessing gives
    pixels = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
    by_timm = timm.data.create_transform(**data_config)(Image.fromarray(pixels))
    by_vitcli = checkpoint.preprocessing.on("cpu")(torch.from_numpy(pixels)[None, None])[0]
    assert torch.allclose(by_timm, by_vitcli, atol=1e-5)


def test_timm_finetune_exports_under_its_own_architecture(runs, tmp_path):
    out = tmp_path / "tuned-timm"
    exported(runs / "tuned", "--format", "timm", "--out", out)
    assert json.loads((out / "config.json").read_text())["architecture"] == "test_vit"
    model, checkpoint = load_timm(out), load_checkpoint(runs / "tuned")
    x = images(size=32)
    with torch.no_grad():
        assert torch.allclose(model(x), checkpoint.model(x), atol=1e-5, rtol=0)
    assert timm.data.resolve_data_config({}, model=model)["input_size"] == (1, 32, 32)


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"tokenizer": "spt"},
            "--tokenizer spt: timm's VisionTransformer has no shifted patch tokenizer; "
            "export it with --format onnx",
        ),
        ({"tokenizer": "conv"}, "--tokenizer conv: timm's VisionTransformer has no convolutional"),
        ({"lsa": True}, "--lsa: timm's Attention has no learned temperature"),
        ({"pool": "seq"}, "--pool seq: timm's VisionTransformer has no sequence pooling"),
        ({"teacher": "runs/cnn"}, "--teacher: timm's distilled ViT (deit) fixes LayerNorm's eps at 1e-6"),
        ({"model": "cnn"}, "--model cnn: timm's format holds Vision Transformers"),
    ],
    ids=["spt", "conv", "lsa", "seq", "teacher", "cnn"],
)
def test_timm_refuses_variants_it_cannot_express_in_one_line(runs, tmp_path, fields, message):
    run_dir = variant(runs, tmp_path, "v", **fields)
    result = run("export", run_dir, "--format", "timm")
    assert result.exit_code == 1
    line = error_line(result.output)
    assert message in line and line.endswith("export it with --format onnx")
    assert not (run_dir / "export-timm").exists()
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".")] == []  # no temporary folder left


def onnx_logits(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"image": x.numpy()})[0])


def vitcli_logits(run_dir, x):
    """What `vitcli eval` computes for images `x` in [0, 1]: the checkpoint's preprocessing of the pixels,
    then the model."""
    checkpoint = load_checkpoint(run_dir)
    with torch.no_grad():
        return checkpoint.model(checkpoint.preprocessing.on("cpu")(x * 255))


@pytest.mark.parametrize(
    "fields",
    [None, {"tokenizer": "spt", "lsa": True}, {"tokenizer": "conv", "pool": "seq"}, {"model": "cnn"}],
    ids=["vit", "spt-lsa", "conv-seq", "cnn"],
)
def test_onnx_matches_pytorch_under_onnxruntime(runs, tmp_path, fields):
    run_dir = runs / "vit" if fields is None else variant(runs, tmp_path, "v", **fields)
    output = exported(run_dir, "--format", "onnx")
    path = run_dir / "model.onnx"
    assert f"wrote {path}" in output and "normalisation inside: mean [0.1307]" in output
    x = images(n=5)  # traced with 2 images: the batch dimension is dynamic
    assert torch.allclose(onnx_logits(path, x), vitcli_logits(run_dir, x), atol=1e-4, rtol=0)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["mean"]) == [0.1307] and json.loads(props["std"]) == [0.3081]
    assert json.loads(props["classes"]) == load_checkpoint(run_dir).info.classes
    assert "[0, 1]" in props["input"]


def test_onnx_of_a_finetune_resizes_inside_the_graph(runs, tmp_path):
    path = tmp_path / "tuned.onnx"
    output = exported(runs / "tuned", "--format", "onnx", "--out", path)
    assert "(batch, 1, 28, 28)" in output and "normalised and resized to 32x32 inside the graph" in output
    x = images(n=3)
    assert torch.allclose(onnx_logits(path, x), vitcli_logits(runs / "tuned", x), atol=1e-4, rtol=0)


def test_an_export_is_replaced_only_with_overwrite(runs, tmp_path):
    run_dir = variant(runs, tmp_path, "v", pos_embed="sinusoidal")
    for fmt, name in (("timm", "export-timm"), ("onnx", "model.onnx")):
        exported(run_dir, "--format", fmt)
        before = sorted(p.name for p in run_dir.iterdir())
        result = run("export", run_dir, "--format", fmt)
        assert result.exit_code == 1
        assert error_line(result.output) == (
            f"error: {run_dir / name} already exists; pass --overwrite to replace it, or choose another --out"
        )
        exported(run_dir, "--format", fmt, "--overwrite")
        assert sorted(p.name for p in run_dir.iterdir()) == before  # replaced, nothing left beside it
    model = load_timm(run_dir / "export-timm")
    x = images()
    with torch.no_grad():
        assert torch.allclose(model(x), load_checkpoint(run_dir).model(x), atol=1e-5, rtol=0)


def test_overwrite_never_deletes_a_folder_that_is_not_an_export(runs, tmp_path):
    keep = tmp_path / "results"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    result = run("export", runs / "vit", "--format", "timm", "--out", keep, "--overwrite")
    assert result.exit_code == 1
    assert "is not a timm export folder (no config.json), so --overwrite leaves it alone" in error_line(
        result.output
    )
    assert (keep / "notes.txt").read_text() == "mine"
    result = run("export", runs / "vit", "--format", "onnx", "--out", keep, "--overwrite")
    assert error_line(result.output).startswith(f"error: {keep} is a directory; pass --out with the path")


def test_overwrite_never_replaces_a_file_that_is_not_an_onnx_export(runs, tmp_path):
    """`export --format onnx --out RUN/model.safetensors --overwrite` replaced the run's checkpoint (and a
    text file too): --overwrite replaces only what export made."""
    run_dir = variant(runs, tmp_path, "o", pos_embed="sinusoidal")
    notes = tmp_path / "notes.onnx"
    notes.write_text("mine")
    for target in (run_dir / "model.safetensors", notes):
        before = target.read_bytes()
        result = run("export", run_dir, "--format", "onnx", "--out", target, "--overwrite")
        assert result.exit_code == 1 and target.read_bytes() == before
        assert "is not an ONNX export of vitcli (no vitcli_version in its metadata)" in error_line(
            result.output
        )
    exported(run_dir, "--format", "onnx", "--out", tmp_path / "m.onnx")
    exported(run_dir, "--format", "onnx", "--out", tmp_path / "m.onnx", "--overwrite")  # its own: replaced


def test_bad_checkpoints_and_formats(tmp_path):
    result = run("export", tmp_path / "missing", "--format", "onnx")
    assert result.exit_code == 1
    assert error_line(result.output).startswith(f"error: checkpoint {tmp_path / 'missing'} does not exist")
    (tmp_path / "model.safetensors").write_text("not a checkpoint")
    result = run("export", tmp_path, "--format", "timm")
    assert result.exit_code == 1 and "is not a safetensors file" in error_line(result.output)
    result = run("export", tmp_path, "--format", "keras")
    assert result.exit_code == 2 and "'keras' is not one of 'timm', 'onnx'" in plain_text(result.output)
    with pytest.raises(ConfigError, match="--format 'keras' is not one of timm, onnx"):
        export_checkpoint(tmp_path, "keras")


def test_two_exports_to_one_out_at_once_write_it_once_and_the_other_is_told(runs, tmp_path):
    """Two real processes: the check that the output is free and the write must be one step, or both
    say "wrote" and the file holds one of the two (so it was on 8bf8b22, 5 tries of 6)."""
    for fmt, out in (("onnx", tmp_path / "race.onnx"),):
        command = [sys.executable, "-m", "vitcli", "export", runs / "vit", "--format", fmt, "--out", out]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
        both = [subprocess.Popen(command, stdout=PIPE, stderr=PIPE, text=True, env=env) for _ in range(2)]
        ended = [(p.wait(timeout=180), *p.communicate()) for p in both]
        assert sorted(code for code, *_ in ended) == [0, 1], ended
        [(_, out_won, _)] = [e for e in ended if e[0] == 0]
        [(_, out_lost, err_lost)] = [e for e in ended if e[0] == 1]
        assert f"wrote {out}" in out_won and "wrote" not in out_lost and "Traceback" not in err_lost
        assert (
            err_lost.strip()
            == f"error: {out} already exists; pass --overwrite to replace it, or choose another --out"
        )
        assert onnx.load(str(out)).metadata_props  # whole
    assert not list(tmp_path.glob(".*")), list(tmp_path.glob(".*"))  # no temporary file or folder left


def test_a_timm_folder_written_meanwhile_by_another_export_is_not_replaced(runs, tmp_path):
    """The timm export's last step is a rename of its folder, which fails onto a folder that is there and
    not empty: the export that finishes second is told, and the first one's folder stays whole."""
    import vitcli.lab.exporter as exporter

    out = tmp_path / "race-timm"
    fill = exporter._save_timm

    calls = []

    def another_export_finishes_first(model, checkpoint, folder):
        fill(model, checkpoint, folder)
        calls.append(folder)
        if len(calls) == 1:  # the other export, whole and renamed into place while this one wrote
            export_checkpoint(runs / "vit", "timm", out)

    theirs = None
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(exporter, "_save_timm", another_export_finishes_first)
        with pytest.raises(OutputError, match="already exists; pass --overwrite"):
            theirs = export_checkpoint(runs / "vit", "timm", out)
    assert theirs is None and load_timm(out) is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race-timm"]  # no temporary folder left


def test_what_a_killed_export_left_beside_its_output_goes_with_the_next_export(runs, tmp_path):
    out = tmp_path / "m.onnx"
    hour_ago = time.time() - 3600
    stale_file, stale_folder = tmp_path / ".m.onnx.k1ll3d.tmp", tmp_path / ".export-timm.k1ll3d.tmp"
    stale_file.write_bytes(b"half an onnx file")
    stale_folder.mkdir()
    (stale_folder / "model.safetensors").write_bytes(b"half")
    fresh = tmp_path / ".m.onnx.wr1t1ng.tmp"  # another export may be writing it right now
    fresh.write_bytes(b"being written")
    for path in (stale_file, stale_folder / "model.safetensors", stale_folder):
        os.utime(path, (hour_ago, hour_ago))
    exported(runs / "vit", "--format", "onnx", "--out", out)
    exported(runs / "vit", "--format", "timm", "--out", tmp_path / "export-timm")
    assert not stale_file.exists() and not stale_folder.exists() and fresh.exists()
