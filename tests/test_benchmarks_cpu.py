"""Smoke tests of the speed benchmarks that issue 26 added or grew (train_speed's tensor-resident loop and
whole processes, cpu_load, cpu_precision, step_profile): tiny options on the CPU, so that the scripts keep
running and their JSON stays what docs/performance.md reads."""

import json
import os

import pytest
from test_benchmarks import load


def _speed_args(tmp_path) -> list[str]:
    from fakedata import write_mnist

    data_dir = write_mnist(tmp_path / "data", train=256, test=64)
    return ["--data-dir", str(data_dir), "--embed-dim", "8", "--heads", "2", "--batch-size", "64"]


def test_train_speed_has_the_tensor_resident_loop(tmp_path):
    args = [*_speed_args(tmp_path), "--loops", "tensor", "vitcli", "--repeats", "1"]
    loops = load("train_speed").main(args)
    assert 0 <= loops["tensor"]["test_accuracy_mean"] <= 1 and loops["tensor"]["runs"][0]["images"] == 256
    assert loops["ratios"]["vitcli/tensor"] == pytest.approx(
        loops["vitcli"]["images_per_s_median"] / loops["tensor"]["images_per_s_median"]
    )


@pytest.mark.slow  # torch.compile's start-up: about 30 s
def test_train_speed_times_whole_processes_with_and_without_compile(tmp_path):
    whole = load("train_speed").main([*_speed_args(tmp_path), "--processes", "--repeats", "1"])
    for loop in ("tensor", "vitcli", "compiled"):
        run = whole[loop]["runs"][0]
        assert run["seconds"] > 0 and 0 <= run["test_accuracy"] <= 1


@pytest.mark.slow  # two training processes: 15 s
def test_cpu_load_measures_each_behaviour_in_its_own_training_process(tmp_path):
    from fakedata import write_mnist

    data_dir = write_mnist(tmp_path / "data", train=2048, test=64)
    args = ["--data-dir", str(data_dir), "--models", "classic ViT", "--conditions", "alone", "--repeats", "1"]
    result = load("cpu_load").main(
        [*args, "--seconds", "1", "--settle", "0", "--json", str(tmp_path / "l.json")]
    )
    assert json.loads((tmp_path / "l.json").read_text()) == json.loads(json.dumps(result))
    rows = {(r["condition"], r["behaviour"]): r for r in result["rows"]}
    assert rows.keys() == {("alone", "old"), ("alone", "new")}
    for r in rows.values():
        assert r["images_per_s"] > 0 and r["of_alone"] == 1.0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert all(1 <= r["threads"][0] <= cores for r in rows.values())
    assert result["old_vs_new_alone"]["classic ViT"] == pytest.approx(
        rows["alone", "new"]["images_per_s"] / rows["alone", "old"]["images_per_s"]
    )


def test_step_profile_counts_flops_and_the_share_of_the_matmul_peak():
    result = load("step_profile").main(["--steps", "2", "--top", "5"])
    assert result["flops_per_step"] > 0 and 0 < result["share_of_peak"] < 1.5
    assert result["gflops"] == pytest.approx(result["flops_per_step"] / result["step_ms"] / 1e6)
    assert len(result["top_ops"]) == 5 and all(0 < op["share"] <= 1 for op in result["top_ops"])


@pytest.mark.slow  # two `vitcli train` processes: 12 s
def test_cpu_precision_trains_each_model_in_fp32_and_bf16(tmp_path):
    from fakedata import write_mnist

    data_dir = write_mnist(tmp_path / "data", train=512, test=64)
    result = load("cpu_precision").main(
        ["--data-dir", str(data_dir), "--models", "classic ViT", "--threads", "1"]
    )
    (row,) = result["rows"]
    for precision in ("fp32", "bf16"):
        assert row[precision]["images_per_s"] > 0 and 0 <= row[precision]["test_accuracy"] <= 1
    assert row["bf16_speed"] == pytest.approx(row["bf16"]["images_per_s"] / row["fp32"]["images_per_s"])
