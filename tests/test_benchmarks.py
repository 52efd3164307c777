"""Smoke tests of the benchmarks in benchmarks/: tiny options on the CPU, so that the scripts keep
running and their JSON keeps its shape. The figures themselves are measured by hand (docs/performance.md)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from vitcli.models.vit import PatchEmbedding
from vitcli.training.engine import fit

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # as `python benchmarks/x.py` does: the scripts import common.py from it


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def test_attention_cost_sweeps_tokens(tmp_path):
    out = tmp_path / "attention.json"
    result = load("attention_cost").main(
        [
            "--sizes",
            "28:14,28:7,28:4",
            "--embed-dim",
            "8",
            "--heads",
            "2",
            "--depth",
            "1",
            "--batch-size",
            "2",
            "--steps",
            "2",
            "--warmup",
            "0",
            "--forward",
            "--no-memory",
            "--json",
            str(out),
        ]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert set(result["results"]) == {"train", "forward"}
    for rows in result["results"].values():
        assert [r["tokens"] for r in rows] == [5, 17, 50]
        assert [r["attention_matrix_bytes"] for r in rows] == [2 * 2 * n * n * 4 for n in (5, 17, 50)]
        for r in rows:
            assert r["time_ms"]["fused"] > 0 and r["time_ms"]["explicit"] > 0
            assert r["time_ratio"] == pytest.approx(r["time_ms"]["explicit"] / r["time_ms"]["fused"])
        assert rows[0]["time_slope"]["fused"] is None and isinstance(rows[1]["time_slope"]["explicit"], float)


def test_attention_cost_memory_probe_sees_the_attention_matrices():
    bench = load("attention_cost")
    args = bench.parse_args(["--embed-dim", "8", "--heads", "2", "--depth", "1", "--batch-size", "16"])
    # 28 px, patch 2: 197 tokens, so one attention matrix is 16 x 2 x 197^2 x 4 bytes = 4.7 MiB, kept for
    # backward.
    explicit = bench.peak_bytes(args, 28, 2, "explicit", "train", torch.device("cpu"))
    assert explicit >= 16 * 2 * 197**2 * 4


def test_eval_speed_measures_every_task(tmp_path):
    result = load("eval_speed").main(
        [
            "--train-steps",
            "2",
            "--batch-size",
            "8",
            "--eval-images",
            "64",
            "--eval-batch-sizes",
            "16,64",
            "--forward-batch",
            "32",
            "--attention-images",
            "16",
            "--attention-batch",
            "8",
            "--repeats",
            "1",
            "--warmup-rounds",
            "0",
            "--profile",
            "--profile-ops",
            "3",
            "--profile-calls",
            "1",
            "--json",
            str(tmp_path / "eval.json"),
        ]
    )
    classic = result["models"]["classic"]
    tasks = {
        "train",
        "eval b16",
        "eval b64",
        "forward no_grad b32",
        "forward inference_mode b32",
        "extract",
        "explain",
    }
    assert set(classic["images_per_s_median"]) == tasks
    assert set(classic["ratio_to_train"]) == tasks - {"train"}
    assert all(rate > 0 for rate in classic["images_per_s_median"].values())
    assert classic["tokens"] == 17 and classic["parameters"] == 27_978
    for ops in classic["profile"].values():
        assert len(ops) == 4 and ops[-1]["op"] == "total"
        assert sum(op["share"] for op in ops[:-1]) <= 1.0 + 1e-9


def test_cpu_levers_against_the_baseline(mnist_dir, tmp_path):
    result = load("cpu_levers").main(
        [
            "--data-dir",
            str(mnist_dir),
            "--levers",
            "matmul patches,explicit attention",
            "--batch-size",
            "32",
            "--repeats",
            "1",
            "--json",
            str(tmp_path / "levers.json"),
        ]
    )
    levers = result["levers"]
    assert list(levers) == ["baseline", "matmul patches", "explicit attention"]
    assert levers["baseline"]["epoch_ratio"] == 1.0
    for lever in levers.values():
        assert lever["epoch_images_per_s_median"] > 0 and lever["steady_images_per_s_median"] > 0
        assert 0 <= lever["test_accuracy_median"] <= 1
    # Both levers compute the same function as the baseline, so they learn the same digits.
    for name in ("matmul patches", "explicit attention"):
        baseline = levers["baseline"]["test_accuracy_median"]
        assert levers[name]["test_accuracy_median"] == pytest.approx(baseline, abs=0.02)


def test_cpu_levers_set_precision_and_optimiser_through_fit(mnist_dir, tmp_path, monkeypatch):
    bench = load("cpu_levers")
    calls = []

    def recording_fit(*args, **kwargs):
        calls.append(kwargs)
        return fit(*args, **kwargs)

    monkeypatch.setattr(bench, "fit", recording_fit)  # the script's own name for fit; vitcli is untouched
    result = bench.main(
        [
            "--data-dir",
            str(mnist_dir),
            "--levers",
            "bfloat16 autocast,foreach AdamW",
            "--batch-size",
            "32",
            "--repeats",
            "1",
            "--json",
            str(tmp_path / "levers.json"),
        ]
    )
    assert list(result["levers"]) == ["baseline", "bfloat16 autocast", "foreach AdamW"]
    assert [(c["autocast_dtype"], c["optimizer_options"]) for c in calls] == [
        ("auto", None),
        (torch.bfloat16, None),
        ("auto", {"foreach": True}),
    ]
    for lever in result["levers"].values():
        assert lever["steady_images_per_s_median"] > 0 and 0 <= lever["test_accuracy_median"] <= 1


@pytest.mark.parametrize("channels,patch", [(1, 7), (3, 4)])
def test_matmul_patch_embedding_is_the_convolution(channels, patch):
    conv = PatchEmbedding(channels, 16, patch)
    matmul = PatchEmbedding(channels, 16, patch)
    matmul.load_state_dict(conv.state_dict())
    matmul.__class__ = load("cpu_levers").MatmulPatchEmbedding
    x = torch.randn(3, channels, 28, 28)
    torch.testing.assert_close(matmul(x), conv(x))


def test_train_speed_compares_the_two_loops_on_mnist_files(tmp_path):
    from fakedata import write_mnist

    data_dir = write_mnist(tmp_path / "data", train=256, test=64)
    result = load("train_speed").main(
        [
            "--data-dir",
            str(data_dir),
            "--embed-dim",
            "8",
            "--heads",
            "2",
            "--batch-size",
            "64",
            "--repeats",
            "1",
            "--json",
            str(tmp_path / "train.json"),
        ]
    )
    assert json.loads((tmp_path / "train.json").read_text()) == json.loads(json.dumps(result))
    for loop in ("plain", "vitcli"):
        assert result[loop]["images_per_s_median"] > 0 and 0 <= result[loop]["test_accuracy_mean"] <= 1
    ratio = result["vitcli"]["images_per_s_median"] / result["plain"]["images_per_s_median"]
    assert result["speedup"] == pytest.approx(ratio)


def test_finetune_speed_compares_with_a_plain_timm_loop(tmp_path):
    import timm

    if not timm.is_model("test_vit"):
        pytest.skip("this timm has no test_vit; a newer timm has")
    result = load("finetune_speed").main(
        [
            "--model",
            "test_vit",
            "--img-size",
            "32",
            "--patch-size",
            "8",
            "--batch-size",
            "4",
            "--steps",
            "2",
            "--repeats",
            "1",
            "--device",
            "cpu",
        ]
    )
    assert result["config"]["model"] == "test_vit"
    assert result["plain"]["images_per_s_median"] > 0 and result["vitcli"]["images_per_s_median"] > 0


def test_cache_cost_measures_the_checks_against_decoding(tmp_path):
    from fakedata import write_mnist

    data_dir = write_mnist(tmp_path / "data", train=64, test=16)
    result = load("cache_cost").main(
        ["--data-dir", str(data_dir), "--repeats", "1", "--json", str(tmp_path / "r.json")]
    )
    assert result["tensor_bytes"] == (64 + 16) * 28 * 28 + (64 + 16) * 8
    assert all(result[k] > 0 for k in ("uncached_load_s", "cached_load_s", "fingerprint_s", "checksum_s"))
    assert json.loads((tmp_path / "r.json").read_text())["benchmark"] == "cache_cost"


def test_lever_cost_runs_every_lever_against_crops_and_flips(mnist_dir, tmp_path):
    result = load("lever_cost").main(
        [
            "--data-dir",
            str(mnist_dir),
            "--batch-size",
            "32",
            "--repeats",
            "1",
            "--json",
            str(tmp_path / "l.json"),
        ]
    )
    rows = result["rows"]
    assert list(rows) == load("lever_cost").ROWS and rows["crops and flips"]["ratio"] == 1.0
    assert result["every_lever_ratio"] == rows["every lever"]["ratio"] > 0
    every = result["config"]["levers"]["every lever"]
    assert every["data"]["mixup"] > 0 and every["train"]["ema"] > 0 and every["data"]["randaugment"] > 0
    assert json.loads((tmp_path / "l.json").read_text())["benchmark"] == "lever_cost"


@pytest.mark.slow  # a smoke test of a benchmark script that trains (8-24 s): outside CI
def test_time_to_accuracy_times_vitcli_train_end_to_end(mnist_dir, tmp_path):
    result = load("time_to_accuracy").main(
        [
            "--data-dir",
            str(mnist_dir),
            "--preset",
            "mnist-classic",
            "--seeds",
            "0",
            "1",
            "--json",
            str(tmp_path / "t.json"),
            "--",
            "--epochs",
            "1",
            "--batch-size",
            "64",
        ]
    )
    assert [r["seed"] for r in result["runs"]] == [0, 1]
    for r in result["runs"]:
        assert r["seconds"] > r["train_seconds"] > 0 and 0 <= r["test_accuracy"] <= 1
        assert r["met_target"] == (r["test_accuracy"] >= 0.99 and r["seconds"] <= 300)
    assert result["settings"]["model"]["embed_dim"] == 32


@pytest.mark.slow  # a smoke test of a benchmark script that trains (8-24 s): outside CI
def test_small_data_vits_sets_epochs_from_the_budget_and_distils_from_the_cnn_row(mnist_dir, tmp_path):
    args = ["--data", "mnist", "--data-dir", str(mnist_dir), "--rows", "cnn", "vit-distilled"]
    args += ["--budget", "1", "--calibration-images", "128", "--out", str(tmp_path / "runs")]
    result = load("small_data_vits").main([*args, "--json", str(tmp_path / "s.json")])
    assert json.loads((tmp_path / "s.json").read_text()) == result
    cnn, distilled = result["rows"]
    assert (cnn["row"], cnn["tokens"], cnn["teacher_share"]) == ("cnn", None, None)
    assert distilled["tokens"] == 18 and 0 < distilled["teacher_share"] < 1
    assert distilled["model"]["teacher"] == str(tmp_path / "runs" / "cnn")
    assert all(r["epochs"] == 1 and 0 <= r["test_accuracy"] <= 1 for r in result["rows"])
    again = load("small_data_vits").main(["--data", "mnist", "--runs", str(tmp_path / "runs")])
    assert [r["row"] for r in again["rows"]] == ["cnn", "vit-distilled"]
    assert [r["test_accuracy"] for r in again["rows"]] == [cnn["test_accuracy"], distilled["test_accuracy"]]


@pytest.mark.slow  # a smoke test of a benchmark script that trains (8-24 s): outside CI
def test_ddp_overhead_runs_one_and_two_processes(mnist_dir, tmp_path):
    out = tmp_path / "ddp.json"
    argv = ["--data-dir", str(mnist_dir), "--epochs", "1", "--batch-size", "32", "--subset", "128"]
    result = load("ddp_overhead").main([*argv, "--repeats", "1", "--json", str(out), "--", "--depth", "1"])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert [r["nproc"] for r in result["results"]] == [1, 2] and result["model"] == ["--depth", "1"]
    one, two = result["results"]
    assert one["ratio"] == 1.0 and two["ratio"] == pytest.approx(two["images_per_s"] / one["images_per_s"])
    assert two["val_accuracy"] == pytest.approx(one["val_accuracy"])  # the same model, trained twice


@pytest.mark.slow  # a smoke test of a benchmark script that trains (8-24 s): outside CI
def test_report_speed_trains_a_sweep_and_times_its_report(mnist_dir, tmp_path):
    result = load("report_speed").main(
        ["--data-dir", str(mnist_dir), "--subset", "100", "--embed-dims", "8", "--depths", "1,2"]
        + ["--seeds", "1", "--repeats", "1", "--json", str(tmp_path / "r.json")]
    )
    assert result["runs"] == 2 and result["wall_median_s"] > 0 and 10_000 < result["html_bytes"] < 5_000_000
    assert json.loads((tmp_path / "r.json").read_text())["benchmark"] == "report_speed"


def test_pretraining_study_differs_only_in_init_between_its_starts():
    study = load("pretraining_study")
    data = ["--dataset", "mnist"]
    first, then = study.runs(study.STUDIES["mnist"], data, [50, 200], [0, 1], ["vit", "cnn"], None)
    assert [r.name for r in first] == ["pretrain-vit", "pretrain-cnn"]
    assert all("0,1,2,3,4" in r.args for r in first)
    assert len(then) == 2 * 2 * 2 * 2  # sizes, seeds, models, starts
    by_name = {r.name: r.args for r in then}
    scratch, pretrained = by_name["vit-scratch-200-s1"], by_name["vit-pretrained-200-s1"]
    assert [a for a in pretrained if a not in scratch] == ["--init", "RUNS/pretrain-vit"]
    assert "5,6,7,8,9" in scratch and scratch[scratch.index("--epochs") + 1] == str(study.EPOCHS[200])


@pytest.mark.slow  # a smoke test of a benchmark script that trains (about 20 s): outside CI
def test_pretraining_study_pretrains_then_trains_from_scratch_and_from_it(tmp_path):
    from fakedata import write_mnist

    data = write_mnist(tmp_path / "data", train=1200, test=200)
    result = load("pretraining_study").main(
        [
            "--data",
            "mnist",
            "--data-dir",
            str(data),
            "--runs",
            str(tmp_path / "runs"),
            "--sizes",
            "50",
            "--models",
            "vit",
            "--epochs",
            "1",
            "--json",
            str(tmp_path / "study.json"),
        ]
    )
    (row,) = result["rows"]
    assert (row["model"], row["per_class"], len(row["scratch"]), len(row["pretrained"])) == ("vit", 50, 1, 1)
    assert json.loads((tmp_path / "study.json").read_text()) == json.loads(json.dumps(result))
    from safetensors import safe_open

    with safe_open(tmp_path / "runs" / "vit-pretrained-50-s0" / "model.safetensors", "pt") as f:
        assert json.loads(f.metadata()["transfer"])["source"].endswith("pretrain-vit")
