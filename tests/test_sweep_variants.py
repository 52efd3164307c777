"""`vitcli sweep` over the ViTs made for small data: tokenizers, poolings and a teacher."""

from cli_helpers import train
from sweep_helpers import only_sweep_dir, sweep

from vitcli.sweeps.results import load_results


def test_a_sweep_over_tokenizers_and_poolings_runs_each_and_records_what_cannot_run(tmp_path, mnist_dir):
    result = sweep(tmp_path, mnist_dir, "--tokenizer", "patch", "spt", "conv", "--pool", "cls", "gap")
    assert result.exit_code == 0, result.output
    rows = load_results(only_sweep_dir(tmp_path))
    assert len(rows) == 6 and all(r["status"] == "finished" for r in rows)
    tokens = {(r["values"]["tokenizer"], r["values"]["pool"]): r["tokens"] for r in rows}
    assert tokens == {
        ("patch", "cls"): 17,
        ("patch", "gap"): 16,
        ("spt", "cls"): 17,
        ("spt", "gap"): 16,
        ("conv", "cls"): 50,
        ("conv", "gap"): 49,
    }
    # a patch size that does not divide 28 leaves the patch tokenizers out, not the convolutional one
    other = sweep(tmp_path, mnist_dir, "--tokenizer", "spt", "conv", "--patch-size", 5, "--name", "five")
    assert other.exit_code == 0, other.output
    rows = {r["values"]["tokenizer"]: r for r in load_results(tmp_path / "sweeps" / "five")}
    assert rows["spt"]["status"] == "failed" and "not divisible by --patch-size 5" in rows["spt"]["error"]
    assert rows["conv"]["status"] == "finished"


def test_a_sweep_with_a_teacher_records_pooled_students_as_invalid(tmp_path, mnist_dir):
    teacher = train(tmp_path, mnist_dir, "--model", "cnn", "--subset", 100, "--name", "cnn")
    assert teacher.exit_code == 0, teacher.output
    args = ("--teacher", tmp_path / "runs" / "cnn", "--pool", "cls", "gap", "--embed-dim", 8)
    result = sweep(tmp_path, mnist_dir, *args)
    assert result.exit_code == 0, result.output
    rows = {r["values"]["pool"]: r for r in load_results(only_sweep_dir(tmp_path))}
    assert rows["cls"]["status"] == "finished" and rows["cls"]["tokens"] == 18  # [CLS], distillation
    assert rows["gap"]["failure"] == "invalid" and "--teacher needs --pool cls" in rows["gap"]["error"]
