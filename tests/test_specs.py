"""Model specs (`settings/specs.py`): each kind holds its own fields, checks them once, and builds a run's
model, preprocessing and record; `[model]` in TOML is a tagged union on `kind`."""

import json

import pytest
import timm
import torch
from typer.testing import CliRunner

from vitcli.cli import app
from vitcli.data import ChannelStats, DatasetInfo
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import ConfigError
from vitcli.models import CNN, ViT, count_parameters
from vitcli.models.build import build_model, build_module
from vitcli.models.timm_vit import resolve_timm
from vitcli.settings.config import Config, load_config
from vitcli.settings.specs import SPECS, CNNSpec, TimmSpec, ViTSpec

runner = CliRunner()
MNIST = DatasetInfo("mnist", 1, 28, 28, [str(i) for i in range(10)], "digits")
STATS = ChannelStats((0.1307,), (0.3081,))


def test_each_kind_holds_only_its_own_fields():
    assert set(ViTSpec().to_dict()) == {
        "kind",
        "embed_dim",
        "patch_size",
        "depth",
        "heads",
        "mlp_dim",
        "pos_embed",
        "dropout",
        "tokenizer",
        "conv_layers",
        "lsa",
        "pool",
        "teacher",
        "init",
        "freeze",
        "layer_decay",
    }
    transfer = {"init": None, "freeze": "none", "layer_decay": None}  # --init (training/transfer.py)
    assert CNNSpec().to_dict() == {"kind": "cnn", "dropout": 0.0, **transfer}
    assert TimmSpec().to_dict()["kind"] == "timm" and "embed_dim" not in TimmSpec().to_dict()
    assert list(SPECS) == ["vit", "cnn", "timm"]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ViTSpec(embed_dim=0), "--embed-dim must be a positive whole number, got 0"),
        (lambda: ViTSpec(mlp_dim=-1), "--mlp-dim must be a positive"),
        (lambda: ViTSpec(pos_embed="rope"), "--pos-embed must be one of learned, sinusoidal"),
        (lambda: ViTSpec(dropout=float("nan")), r"--dropout must be in \[0, 1\)"),
        (lambda: CNNSpec(dropout=1.0), r"--dropout must be in \[0, 1\)"),
        (lambda: TimmSpec(channels="rgb"), "--channels must be one of adapt, repeat"),
        (lambda: TimmSpec(freeze="most"), "--freeze must be none, backbone or a number"),
        (lambda: TimmSpec(layer_decay=0.0), r"--layer-decay must be in \(0, 1\]"),
        (lambda: TimmSpec(img_size=0), "--img-size must be a positive"),
        (lambda: TimmSpec(name=""), "--model must name a timm ViT"),
    ],
)
def test_each_spec_checks_its_values_as_it_is_made(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_combinations_are_checked_by_validate():
    with pytest.raises(
        ConfigError,
        match="--embed-dim 30 is not divisible by --heads 4.*heads in \\[1, 2, 3, 5, 6, 10, 15\\]",
    ):
        ViTSpec(embed_dim=30, heads=4).validate()
    with pytest.raises(ConfigError, match="--img-size 32 is not a multiple of --patch-size 7"):
        TimmSpec(img_size=32, patch_size=7).validate()
    assert CNNSpec().validate() == CNNSpec()


def test_modules_are_built_from_the_spec_and_the_data_shape():
    vit, cnn = build_module(ViTSpec(heads=4), MNIST), build_module(CNNSpec(), MNIST)
    assert isinstance(vit, ViT) and isinstance(cnn, CNN)
    assert count_parameters(vit) == 27_978 and vit.num_tokens == 17
    with pytest.raises(ConfigError, match="not divisible by --patch-size 5"):
        build_module(ViTSpec(patch_size=5), MNIST)


def test_models_from_scratch_normalise_with_the_data_statistics():
    built = build_model(ViTSpec(), MNIST, STATS, weight_decay=0.05, emit=print)
    assert built.spec == ViTSpec() and built.param_groups is None and built.adaptation is None
    assert built.preprocessing == Preprocessing((0.1307,), (0.3081,))
    x = torch.full((1, 1, 2, 2), 255, dtype=torch.uint8)
    torch.testing.assert_close(
        built.preprocessing.on("cpu")(x), torch.full((1, 1, 2, 2), (1 - 0.1307) / 0.3081)
    )


@pytest.mark.skipif(not timm.is_model("test_vit"), reason="this timm has no test_vit; a newer timm has")
def test_a_timm_spec_resolves_its_sizes_to_the_models_own():
    resolved = resolve_timm(TimmSpec(name="test_vit", pretrained="none", patch_size=8))
    assert (resolved.img_size, resolved.patch_size) == (160, 8)
    with pytest.raises(ConfigError, match="--img-size 160 is not a multiple of --patch-size 7"):
        resolve_timm(TimmSpec(name="test_vit", patch_size=7))


# --- [model] as a tagged union ----------------------------------------------------------------------


def test_another_kinds_options_are_left_out_with_a_note():
    cfg = load_config(None, {"model": {"kind": "cnn", "heads": 3, "embed_dim": 64, "dropout": 0.1}})
    assert cfg.model == CNNSpec(dropout=0.1)
    assert cfg.notes == [
        "--heads is a setting of vit models; a cnn model has none, so it is ignored",
        "--embed-dim is a setting of vit models; a cnn model has none, so it is ignored",
    ]


def test_a_new_kind_starts_from_its_own_defaults(tmp_path):
    (tmp_path / "vit.toml").write_text('[model]\nkind = "vit"\npatch_size = 4\ndropout = 0.2\n')
    cfg = load_config(tmp_path / "vit.toml", {"model": {"kind": "timm"}})
    assert cfg.model == TimmSpec()  # a ViT's patch_size 4 is not a timm model's patch size


def test_unknown_keys_are_refused_with_the_kinds_keys(tmp_path):
    (tmp_path / "c.toml").write_text('[model]\nkind = "cnn"\nwidth = 3\n')
    with pytest.raises(ConfigError, match=r"c.toml: \[model\]: unknown key 'width'; the keys are dropout"):
        load_config(tmp_path / "c.toml")


def test_the_cnn_trains_with_vit_options_given_and_says_they_are_ignored(tmp_path, mnist_dir):
    result = runner.invoke(
        app,
        [
            str(a)
            for a in (
                "train",
                "--model",
                "cnn",
                "--heads",
                3,
                "--data-dir",
                mnist_dir,
                "--epochs",
                1,
                "--subset",
                64,
                "--batch-size",
                32,
                "--device",
                "cpu",
                "--out",
                tmp_path / "runs",
                "--name",
                "c",
            )
        ],
    )
    assert result.exit_code == 0, result.output
    assert "--heads is a setting of vit models; a cnn model has none, so it is ignored" in " ".join(
        result.output.split()
    )
    toml = (tmp_path / "runs" / "c" / "config.toml").read_text()
    model = toml.split("\n\n")[0]
    assert model.startswith('[model]\nkind = "cnn"\ndropout = 0.0\n') and "heads" not in toml


def test_toml_round_trip_of_every_kind(tmp_path):
    for model in (
        ViTSpec(heads=4, mlp_dim=64),
        CNNSpec(dropout=0.3),
        TimmSpec(name="vit_tiny_patch16_224", freeze="backbone"),
    ):
        cfg = Config(model=model)
        (tmp_path / "c.toml").write_text(cfg.to_toml())
        assert (
            load_config(tmp_path / "c.toml") == cfg
            and json.loads(cfg.to_json())["model"]["kind"] == model.kind
        )
