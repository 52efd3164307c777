import json
from pathlib import Path

import pytest
import timm
import torch
from fakedata import write_mnist
from safetensors.torch import load_file, save_file

from vitcli.data import ChannelStats, DatasetInfo
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import CheckpointError
from vitcli.lab.evaluate import eval_checkpoint
from vitcli.models.build import build_model, build_module
from vitcli.settings.config import Config, load_config
from vitcli.settings.specs import CNNSpec, TimmSpec, ViTSpec
from vitcli.training.checkpoint import load_checkpoint, read_metadata, save_checkpoint

INFO = DatasetInfo("mnist", 1, 28, 28, [str(i) for i in range(10)], "digits")
STATS = ChannelStats((0.1307,), (0.3081,))
FIXTURES = Path(__file__).parent / "fixtures" / "v0_1_0"


def built(cfg: Config):
    return build_model(cfg.model, INFO, STATS, weight_decay=cfg.train.weight_decay, emit=lambda event: None)


def save(path, cfg=None, metrics=None):
    cfg = cfg or Config()
    b = built(cfg)
    save_checkpoint(path, b, cfg, INFO, metrics or {})
    return b


@pytest.mark.parametrize(
    "model",
    [
        {"kind": "vit", "heads": 4, "pos_embed": "sinusoidal"},
        {"kind": "vit", "heads": 1},
        {"kind": "cnn", "dropout": 0.2},
    ],
)
def test_round_trip_gives_the_same_spec_preprocessing_and_logits(tmp_path, model):
    cfg = load_config(None, {"model": model})
    b = save(tmp_path / "m.safetensors", cfg, {"test_accuracy": 0.5})
    loaded = load_checkpoint(tmp_path / "m.safetensors")
    assert loaded.config == cfg and loaded.info == INFO and loaded.metrics == {"test_accuracy": 0.5}
    assert loaded.preprocessing == Preprocessing(STATS.mean, STATS.std) and loaded.adaptation is None
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(loaded.model(x), b.module.eval()(x), rtol=0, atol=0)


@pytest.mark.skipif(not timm.is_model("test_vit"), reason="this timm has no test_vit; a newer timm has")
def test_a_timm_round_trip_keeps_the_resolved_spec_the_preprocessing_and_the_adaptation(tmp_path):
    cfg = load_config(
        None,
        {
            "model": {
                "kind": "timm",
                "name": "test_vit",
                "pretrained": "none",
                "patch_size": 8,
                "channels": "repeat",
            }
        },
    )
    b = save(tmp_path / "m.safetensors", cfg)
    loaded = load_checkpoint(tmp_path / "m.safetensors")
    assert loaded.config.model == TimmSpec(
        name="test_vit", pretrained="none", img_size=160, patch_size=8, channels="repeat"
    )  # timm's 160 for test_vit, written down
    assert loaded.preprocessing == Preprocessing(STATS.mean, STATS.std, size=(160, 160), channels=3)
    assert loaded.adaptation == b.adaptation and loaded.adaptation.gray_repeated
    x = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    inputs = loaded.preprocessing.on("cpu")(x)
    assert inputs.shape == (2, 3, 160, 160)
    torch.testing.assert_close(loaded.model(inputs), b.module.eval()(inputs), rtol=0, atol=0)


def test_metadata_is_readable_json(tmp_path):
    save(tmp_path / "m.safetensors")
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["format"] == "vitcli/2"
    assert json.loads(meta["config"])["model"] == {"kind": "vit", **ViTSpec().to_dict()}
    assert json.loads(meta["dataset"])["classes"][3] == "3"
    assert json.loads(meta["preprocessing"]) == {
        "mean": [0.1307],
        "std": [0.3081],
        "size": None,
        "channels": None,
    }
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.safetensors")


def test_not_safetensors(tmp_path):
    (tmp_path / "x.safetensors").write_text("hello")
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(tmp_path / "x.safetensors")


def test_safetensors_without_vitcli_metadata(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(CheckpointError, match="without vitcli metadata"):
        load_checkpoint(tmp_path / "x.safetensors")


def test_a_newer_format_says_upgrade_not_damaged(tmp_path):
    save(tmp_path / "m.safetensors")
    meta = {**read_metadata(tmp_path / "m.safetensors"), "format": "vitcli/9", "vitcli_version": "9.0.0"}
    save_file(load_file(str(tmp_path / "m.safetensors")), str(tmp_path / "m.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match="written by vitcli 9.0.0 .*upgrade vitcli"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_weights_that_do_not_match_the_config(tmp_path):
    save(tmp_path / "m.safetensors")
    # Rewrite the file with the same metadata but a wider model's weights.
    meta = read_metadata(tmp_path / "m.safetensors")
    wider = build_module(ViTSpec(embed_dim=64), INFO)
    save_file(
        {k: v.contiguous() for k, v in wider.state_dict().items()},
        str(tmp_path / "m.safetensors"),
        metadata=meta,
    )
    with pytest.raises(CheckpointError, match=r"tensor '.*' is \(.*64.*\) but the config builds"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_a_run_directory_can_be_passed(tmp_path):
    save(tmp_path / "model.safetensors", load_config(None, {"model": {"kind": "cnn"}}))
    loaded = load_checkpoint(tmp_path)
    assert loaded.info == INFO and loaded.config.model == CNNSpec()


def test_a_directory_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory without model.safetensors"):
        load_checkpoint(tmp_path)


# --- checkpoints written by vitcli 0.1.0 (tests/fixtures/v0_1_0, made by make_fixtures.py there) ------

EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
X = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))  # the input make_fixtures.py used


def test_a_0_1_0_vit_checkpoint_loads_gives_the_same_logits_and_evaluates_to_the_same_accuracy(tmp_path):
    loaded = load_checkpoint(FIXTURES / "vit-0.1.0.safetensors")
    assert loaded.vitcli_version == "0.1.0"
    assert loaded.config.model == ViTSpec(embed_dim=16, patch_size=7, depth=2, heads=2)
    assert loaded.preprocessing == Preprocessing((0.1307,), (0.3081,))
    with torch.no_grad():
        logits = loaded.model(X)
    torch.testing.assert_close(logits, torch.tensor(EXPECTED["vit"]["logits_of_randn_seed0_4x1x28x28"]))
    report = eval_checkpoint(
        FIXTURES / "vit-0.1.0.safetensors", data_dir=str(write_mnist(tmp_path)), device="cpu"
    )
    assert report.result.accuracy == EXPECTED["vit"]["test_accuracy"]
    assert report.result.loss == pytest.approx(EXPECTED["vit"]["test_loss"], rel=1e-5)


@pytest.mark.skipif(not timm.is_model("test_vit"), reason="this timm has no test_vit; a newer timm has")
def test_a_0_1_0_timm_checkpoint_resizes_and_repeats_through_its_preprocessing(tmp_path):
    file = FIXTURES / "timm-0.1.0.safetensors"
    loaded = load_checkpoint(file)
    assert loaded.config.model == TimmSpec(
        name="test_vit", pretrained="none", img_size=16, patch_size=8, channels="repeat"
    )
    # 0.1.0 resized and repeated inside the module; the preprocessing does it now, to the same logits.
    assert loaded.preprocessing.size == (16, 16) and loaded.preprocessing.channels == 3
    with torch.no_grad():
        logits = loaded.model(_prepared(loaded))
    torch.testing.assert_close(logits, torch.tensor(EXPECTED["timm"]["logits_of_randn_seed0_4x1x28x28"]))
    report = eval_checkpoint(file, data_dir=str(write_mnist(tmp_path)), device="cpu")
    assert report.result.accuracy == EXPECTED["timm"]["test_accuracy"]
    assert report.result.loss == pytest.approx(EXPECTED["timm"]["test_loss"], rel=1e-5)


def _prepared(checkpoint):
    """X (already normalised, as make_fixtures.py fed it to 0.1.0's module) resized and repeated."""
    resized = torch.nn.functional.interpolate(
        X, size=checkpoint.preprocessing.size, mode="bilinear", align_corners=False
    )
    return resized.expand(-1, 3, -1, -1)


FROM_SCRATCH = {"init": None, "freeze": "none", "layer_decay": None}  # no --init: as 0.1.0 trained


@pytest.mark.parametrize(
    "name, model",
    [
        (
            "vit",
            {
                "kind": "vit",
                "embed_dim": 16,
                "patch_size": 7,
                "depth": 2,
                "heads": 2,
                "mlp_dim": None,
                "pos_embed": "learned",
                "dropout": 0.0,
                # later settings, at the defaults that give the model 0.1.0 trained
                "tokenizer": "patch",
                "conv_layers": 2,
                "lsa": False,
                "pool": "cls",
                "teacher": None,
                **FROM_SCRATCH,
            },
        ),
        ("cnn", {"kind": "cnn", "dropout": 0.0, **FROM_SCRATCH}),  # 0.1.0 wrote the ViT's settings too
        (
            "timm",
            {
                "kind": "timm",
                "name": "test_vit",
                "pretrained": "none",
                "img_size": 16,
                "patch_size": 8,
                "channels": "repeat",
                "adapt": True,
                "freeze": "none",
                "layer_decay": None,
            },
        ),
    ],
)
def test_0_1_0_config_files_load_as_todays_settings(name, model):
    cfg = load_config(FIXTURES / f"{name}-0.1.0-config.toml")
    assert cfg.model.to_dict() == model and not cfg.notes
    assert "finetune" not in cfg.to_dict() and cfg.data.dataset in ("mnist", "cifar10")


@pytest.mark.skipif(
    torch.__version__.split("+")[0] != EXPECTED["made_with"]["torch"] or not timm.is_model("test_vit"),
    reason="bit-identical training is only expected with the PyTorch that made the fixtures",
)
@pytest.mark.parametrize("name", ["vit", "timm"])
def test_training_a_0_1_0_config_today_gives_the_0_1_0_weights_bit_for_bit(tmp_path, name):
    """The refactor of model specs changed no number: the same settings on the same data train to the same
    tensors (the timm model resizes and repeats its input in its preprocessing now, not in its forward)."""
    from vitcli.settings.config import finetune_defaults
    from vitcli.training.run import train_run

    overrides = {
        "data": {"data_dir": str(write_mnist(tmp_path / "data"))},
        "run": {"out": str(tmp_path / "runs")},
    }
    cfg = load_config(
        FIXTURES / f"{name}-0.1.0-config.toml",
        overrides,
        defaults=finetune_defaults() if name == "timm" else None,
    )
    result = train_run(cfg)
    new, old = (
        load_file(str(result.run_dir / "model.safetensors")),
        load_file(str(FIXTURES / f"{name}-0.1.0.safetensors")),
    )
    assert new.keys() == old.keys() and all(torch.equal(new[k], old[k]) for k in old)
    assert result.test.accuracy == EXPECTED[name]["test_accuracy"]


@pytest.mark.parametrize(
    "name",
    [
        "vit",
        pytest.param(
            "timm",
            marks=pytest.mark.skipif(not timm.is_model("test_vit"), reason="this timm has no test_vit"),
        ),
    ],
)
def test_0_1_0_checkpoints_draw_attention(tmp_path, name):
    from typer.testing import CliRunner

    from vitcli.cli import app

    data_dir = write_mnist(tmp_path / "data")
    file = FIXTURES / f"{name}-0.1.0.safetensors"
    args = ["attention", file, "--data-dir", data_dir, "--index", 0, 7, "--out", tmp_path / "pictures"]
    result = CliRunner().invoke(app, [str(a) for a in args] + ["--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert [image["source"] for image in report["images"]] == ["test[0]", "test[7]"]
    assert report["grid_size"] == ([4, 4] if name == "vit" else [2, 2])
    assert sorted(p.name for p in (tmp_path / "pictures").iterdir()) == ["test-0.png", "test-7.png"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m["preprocessing"].update(std=[0.0]), "std positive"),
        (lambda m: m["preprocessing"].update(mean=[float("nan")]), "mean must be finite"),
        (lambda m: m["config"]["model"].update(heads=3), "not divisible by --heads 3"),
        (lambda m: m["config"]["model"].update(embed_dim=-4), "--embed-dim must be a positive"),
        (lambda m: m["config"]["model"].update(dropout=float("nan")), r"--dropout must be in \[0, 1\)"),
        (lambda m: m["config"]["model"].update(depth=100_000), "--depth 100000 is more blocks than any ViT"),
        (lambda m: m["dataset"].update(channels=0), "impossible"),
    ],
)
def test_an_edited_header_is_checked_before_a_model_is_built_from_it(tmp_path, edit, message):
    path = tmp_path / "m.safetensors"
    save(path)
    meta = read_metadata(path)
    parsed = {key: json.loads(meta[key]) for key in ("config", "dataset", "preprocessing")}
    edit(parsed)
    meta.update({key: json.dumps(value) for key, value in parsed.items()})
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(CheckpointError, match=f"damaged vitcli metadata .*{message}"):
        load_checkpoint(path)
