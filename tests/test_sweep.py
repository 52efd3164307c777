"""`vitcli sweep`: grids, the multi-value parser, resume, failures. Its results, table and charts, and
`vitcli report`, are tested in test_sweep_results.py."""

import json

import pytest
from cli_helpers import plain_text, run
from sweep_helpers import only_sweep_dir, sweep

from vitcli.cli.common import spread_values
from vitcli.cli.sweep import BOOL_FLAGS
from vitcli.errors import ConfigError, OutputError, TrainingDiverged
from vitcli.sweeps.execute import RunStarted, run_sweep
from vitcli.sweeps.plan import SWEEPABLE, expand, plan_sweep
from vitcli.sweeps.results import load_results

# --- the issue's measure -----------------------------------------------------------------------------


def test_2x2_sweep_writes_4_results_resumes_to_0_and_records_the_invalid_combination(tmp_path, mnist_dir):
    first = sweep(tmp_path, mnist_dir, "--embed-dim", 6, 8, "--heads", 2, 4)
    assert first.exit_code == 0, first.output
    sweep_dir = only_sweep_dir(tmp_path)
    rows = load_results(sweep_dir)
    assert len(rows) == 4
    by_values = {(r["values"]["embed_dim"], r["values"]["heads"]): r for r in rows}
    failed = by_values.pop((6, 4))
    assert failed["status"] == "failed" and failed["failure"] == "invalid"
    assert "not divisible by --heads 4" in failed["error"]
    assert all(r["status"] == "finished" and 0 <= r["test_accuracy"] <= 1 for r in by_values.values())
    assert all((sweep_dir / r["run"] / "model.safetensors").is_file() for r in by_values.values())
    assert "[4/4]" in first.output and "failed (invalid)" in first.output

    again = sweep(tmp_path, mnist_dir, "--embed-dim", 6, 8, "--heads", 2, 4)
    assert again.exit_code == 0, again.output
    assert "4 runs, 0 to run" in again.output and "[1/4]" not in again.output
    assert load_results(sweep_dir) == rows


def test_a_patch_size_that_does_not_divide_the_image_fails_alone(tmp_path, mnist_dir):
    result = sweep(tmp_path, mnist_dir, "--patch-size", 5, 7, "--embed-dim", 8)
    assert result.exit_code == 0, result.output
    rows = {r["values"]["patch_size"]: r for r in load_results(only_sweep_dir(tmp_path))}
    assert rows[5]["status"] == "failed" and "not divisible by --patch-size 5" in rows[5]["error"]
    assert rows[7]["status"] == "finished"
    assert "failed patch_size=5" in result.output


def test_runs_that_failed_for_other_reasons_are_retried(tmp_path, mnist_dir, monkeypatch):
    import vitcli.training.run

    real_train_run = vitcli.training.run.train_run

    def diverge_at_lr_1(config, on_event=None, **options):
        if config.train.lr == 1.0:
            raise TrainingDiverged("the loss became nan in epoch 1, step 3; lower --lr")
        return real_train_run(config, on_event, **options)

    options = {
        "lr": [1e-2, 1.0],
        "data_dir": [str(mnist_dir)],
        "subset": [100],
        "epochs": [1],
        "device": ["cpu"],
    }
    plan = plan_sweep(options, out=tmp_path / "sweeps")
    monkeypatch.setattr(vitcli.training.run, "train_run", diverge_at_lr_1)
    rows = run_sweep(plan)
    assert [r["status"] for r in rows] == ["finished", "failed"]
    assert rows[1]["failure"] == "diverged" and rows[1]["error"].startswith("the loss became nan")

    monkeypatch.setattr(vitcli.training.run, "train_run", real_train_run)
    started = []
    rows = run_sweep(
        plan, on_event=lambda e: started.append(e.run.index) if isinstance(e, RunStarted) else None
    )
    assert started == [2] and [r["status"] for r in rows] == ["finished", "finished"]
    assert len(load_results(plan.dir)) == 2


def test_retries_are_decided_by_the_kind_of_error(tmp_path, mnist_dir, monkeypatch):
    """Invalid settings fail the same way every time and are skipped on resume; a run directory that
    could not be written (an OutputError: a full disk, permissions) is retried."""
    import vitcli.training.run

    real_train_run = vitcli.training.run.train_run

    def disk_full_at_depth_2(config, on_event=None, **options):
        if config.model.depth == 2:
            raise OutputError("cannot write runs/x/model.safetensors: No space left on device")
        return real_train_run(config, on_event, **options)

    options = {
        "depth": [1, 2],
        "heads": [3],
        "embed_dim": [6, 8],
        "data_dir": [str(mnist_dir)],
        "subset": [100],
        "epochs": [1],
        "device": ["cpu"],
    }
    plan = plan_sweep(options, out=tmp_path / "sweeps")
    monkeypatch.setattr(vitcli.training.run, "train_run", disk_full_at_depth_2)
    rows = run_sweep(plan)
    assert [
        (r["values"]["depth"], r["values"]["embed_dim"], r["status"], r.get("failure")) for r in rows
    ] == [
        (1, 6, "finished", None),
        (2, 6, "failed", "output"),
        (1, 8, "failed", "invalid"),
        (2, 8, "failed", "invalid"),
    ]

    monkeypatch.setattr(vitcli.training.run, "train_run", real_train_run)
    started = []
    rows = run_sweep(
        plan, on_event=lambda e: started.append(e.run.index) if isinstance(e, RunStarted) else None
    )
    assert started == [2] and rows[1]["status"] == "finished"


def test_a_cnn_sweep_over_a_vit_option_is_refused_with_one_line(tmp_path, mnist_dir):
    result = sweep(tmp_path, mnist_dir, "--model", "cnn", "--embed-dim", 8, 16, 32)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "--embed-dim is not a setting of the cnn model this sweep trains" in result.stderr
    assert not (tmp_path / "sweeps").exists()


def test_a_vit_and_cnn_sweep_trains_each_distinct_cnn_once(tmp_path, mnist_dir):
    result = sweep(tmp_path, mnist_dir, "--model", "vit", "cnn", "--embed-dim", 8, 16, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)["planned"]
    assert [p["values"] for p in planned] == [
        {"model": "vit", "embed_dim": 8},
        {"model": "vit", "embed_dim": 16},
        {"model": "cnn", "embed_dim": None},
    ]
    table = sweep(
        tmp_path, mnist_dir, "--model", "vit", "cnn", "--embed-dim", 8, 16, "--dropout", 0.0, 0.1, "--dry-run"
    )
    assert table.exit_code == 0 and "6 planned runs" in table.output  # 4 ViTs, and 2 CNNs (dropout is theirs)


def test_ctrl_c_keeps_finished_results_and_exits_130(tmp_path, mnist_dir, monkeypatch):
    import vitcli.training.run

    real_train_run = vitcli.training.run.train_run

    def interrupt_the_second(config, on_event=None, **options):
        if config.model.depth == 2:
            raise KeyboardInterrupt
        return real_train_run(config, on_event, **options)

    monkeypatch.setattr(vitcli.training.run, "train_run", interrupt_the_second)
    result = sweep(tmp_path, mnist_dir, "--depth", 1, 2, 3, "--embed-dim", 8)
    assert result.exit_code == 130 and "run the same command to resume" in result.stderr
    assert [r["values"] for r in load_results(only_sweep_dir(tmp_path))] == [{"depth": 1}]


# --- input -------------------------------------------------------------------------------------------


def test_spread_values_accepts_several_values_after_one_option():
    multi = [k.replace("_", "-") for k in SWEEPABLE]
    assert spread_values(["--model", "vit", "cnn", "--epochs", "2"], multi, BOOL_FLAGS) == [
        "--model",
        "vit",
        "--model",
        "cnn",
        "--epochs",
        "2",
    ]
    assert spread_values(["--lr", "1e-3", "3e-3", "--json"], multi, BOOL_FLAGS) == [
        "--lr",
        "1e-3",
        "--lr",
        "3e-3",
        "--json",
    ]
    assert spread_values(["--no-augment", "--compile"], multi, BOOL_FLAGS) == [
        "--augment",
        "false",
        "--compile",
        "true",
    ]
    assert spread_values(["--out", "x", "--name", "n"], multi, BOOL_FLAGS) == ["--out", "x", "--name", "n"]
    with pytest.raises(ConfigError, match="--depth needs at least one value"):
        spread_values(["--depth", "--heads", "2"], multi, BOOL_FLAGS)


def test_dry_run_prints_sizes_and_writes_nothing(tmp_path, mnist_dir):
    result = sweep(
        tmp_path, mnist_dir, "--model", "vit", "cnn", "--lr", "1e-3", "3e-3", "--dry-run", "--json"
    )
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)["planned"]
    assert [p["values"] for p in planned] == [
        {"model": "vit", "lr": 1e-3},
        {"model": "vit", "lr": 3e-3},
        {"model": "cnn", "lr": 1e-3},
        {"model": "cnn", "lr": 3e-3},
    ]
    assert [(p["parameters"], p["tokens"]) for p in planned[::2]] == [(27_978, 17), (4_016_650, None)]
    table = sweep(tmp_path, mnist_dir, "--embed-dim", 6, 8, "--heads", 4, "--dry-run")
    assert table.exit_code == 0 and "invalid: --embed-dim 6" in table.output and "2,394" in table.output
    assert not (tmp_path / "sweeps").exists()


def test_the_issues_syntax_plans_27_runs(tmp_path, mnist_dir):
    result = run(
        "sweep",
        "--embed-dim",
        8,
        16,
        32,
        "--patch-size",
        7,
        14,
        28,
        "--depth",
        2,
        4,
        8,
        "--data-dir",
        mnist_dir,
        "--out",
        tmp_path,
        "--dry-run",
        "--json",
    )
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)["planned"]
    assert len(planned) == 27 and all(p["error"] is None for p in planned)
    assert {p["values"]["patch_size"]: p["tokens"] for p in planned} == {7: 17, 14: 5, 28: 2}


def test_help_lists_train_options_with_types_and_defaults():
    result = run("sweep", "--help")
    assert result.exit_code == 0
    for text in (
        "--embed-dim",
        "--patch-size",
        "--lr",
        "--model",
        "--seed",
        "--augment",
        "[default: 32]",
        "float",
        "--dry-run",
        "--mode",
    ):
        assert text in result.output, text
    assert "--name" in result.output and "--print-config" not in result.output


def test_options_given_once_apply_to_every_run(tmp_path):
    plan = plan_sweep({"lr": [1e-3, 3e-3], "epochs": [2], "augment": [False]}, out=tmp_path)
    assert [r.config.train.lr for r in plan.runs] == [1e-3, 3e-3]
    assert all(r.config.train.epochs == 2 and not r.config.data.augment for r in plan.runs)
    assert plan.axes == ["lr"] and plan.name.startswith("lr-")
    # The same grid gives the same name and keys (resume); another shared value gives others.
    again = plan_sweep({"lr": [1e-3, 3e-3], "epochs": [2], "augment": [False]}, out=tmp_path)
    other = plan_sweep({"lr": [1e-3, 3e-3], "epochs": [3], "augment": [False]}, out=tmp_path)
    assert again.name == plan.name and [r.key for r in again.runs] == [r.key for r in plan.runs]
    assert other.name != plan.name and not {r.key for r in other.runs} & {r.key for r in plan.runs}


def test_grid_and_zip_expansion():
    axes = {"embed_dim": [8, 16], "depth": [2, 4]}
    assert expand(axes, "grid") == [
        {"embed_dim": 8, "depth": 2},
        {"embed_dim": 8, "depth": 4},
        {"embed_dim": 16, "depth": 2},
        {"embed_dim": 16, "depth": 4},
    ]
    assert expand(axes, "zip") == [{"embed_dim": 8, "depth": 2}, {"embed_dim": 16, "depth": 4}]
    assert expand({}, "grid") == [{}]
    with pytest.raises(ConfigError, match="same length"):
        expand({"embed_dim": [8, 16, 32], "depth": [2, 4]}, "zip")


def test_zip_mode_repeats_every_row_for_each_seed():
    axes = {"embed_dim": [8, 16], "depth": [2, 4], "seed": [0, 1, 2]}
    assert expand(axes, "zip") == [
        {"embed_dim": e, "depth": d, "seed": seed} for e, d in ((8, 2), (16, 4)) for seed in (0, 1, 2)
    ]
    assert expand({"seed": [0, 1]}, "zip") == [{"seed": 0}, {"seed": 1}]


def test_config_file_grid_with_shared_settings_and_command_line_overrides(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        "[grid]\nembed_dim = [8, 16]\npatch_size = [7, 14]\n\n[model]\ndepth = 3\n\n[train]\nepochs = 2\n"
    )
    plan = plan_sweep(None, path, out=tmp_path)
    assert [r.values for r in plan.runs] == [
        {"embed_dim": 8, "patch_size": 7},
        {"embed_dim": 8, "patch_size": 14},
        {"embed_dim": 16, "patch_size": 7},
        {"embed_dim": 16, "patch_size": 14},
    ]
    assert all(r.config.model.depth == 3 and r.config.train.epochs == 2 for r in plan.runs)
    overridden = plan_sweep({"patch_size": [4], "depth": [1, 2]}, path, mode="zip", out=tmp_path)
    assert [r.values for r in overridden.runs] == [
        {"embed_dim": 8, "depth": 1},
        {"embed_dim": 16, "depth": 2},
    ]
    assert all(r.config.model.patch_size == 4 for r in overridden.runs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--colour", "red"], "No such option: --colour"),
        (["--embed-dim", "8", "x"], "Invalid value for '--embed-dim'"),
        (["--model", "vit", "resnet"], "'resnet' is not one of 'vit', 'cnn'"),
        (["--mode", "cube"], "'cube' is not one of 'grid', 'zip'"),
    ],
)
def test_values_the_parser_rejects_exit_2_with_its_usage_message(tmp_path, mnist_dir, args, message):
    result = run("sweep", "--data-dir", mnist_dir, "--out", tmp_path / "sweeps", *args)
    assert result.exit_code == 2, result.output
    assert message in plain_text(result.stderr) and "Usage: vitcli sweep" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--embed-dim", "--depth", "2"], "--embed-dim needs at least one value"),
        (
            ["--mode", "zip", "--embed-dim", "8", "16", "--depth", "1", "2", "3"],
            "--mode zip needs lists of the same length",
        ),
        (["--epochs", "1", "0"], "--epochs must be a positive"),
        (["--seed", "1", "1"], "runs 1 and 2 are the same run"),
        (["--device", "cpu", "cuda:7"], "--device cuda:7"),
        (["--config", "missing.toml"], "config file missing.toml does not exist"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, mnist_dir, args, message):
    result = run("sweep", "--data-dir", mnist_dir, "--out", tmp_path / "sweeps", *args)
    assert result.exit_code == 1, result.output
    assert message in result.stderr and result.stderr.startswith("error:")
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(
    "toml, message",
    [
        ("grid = 3\n", "'grid' must be a table"),
        ("[grid]\nembed_dim = 8\n", "[grid] embed_dim must be a non-empty list"),
        ("[grid]\nembed_dim = []\n", "[grid] embed_dim must be a non-empty list"),
        ("[grid]\nwidth = [8, 16]\n", "[grid] unknown option 'width'"),
        ('[grid]\nembed_dim = [8, "x"]\n', "embed_dim must be int, got 'x'"),
        ('[run]\nname = "x"\n', "[run] does not apply to sweeps"),
    ],
)
def test_bad_grid_tables(tmp_path, toml, message):
    path = tmp_path / "sweep.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        plan_sweep(None, path, out=tmp_path / "sweeps")
    assert message in str(error.value)


def test_an_out_folder_that_cannot_be_made_is_one_line(tmp_path, mnist_dir):
    (tmp_path / "afile").write_text("not a folder")
    result = run(
        "sweep",
        "--data-dir",
        mnist_dir,
        "--epochs",
        1,
        "--subset",
        64,
        "--device",
        "cpu",
        "--out",
        tmp_path / "afile" / "sweeps",
        "--embed-dim",
        8,
        16,
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "cannot create sweep directory" in result.stderr and "--out" in result.stderr
