"""Presets: named recipes inside the package, listed, loaded under the command line's options, and shipped
in the wheel."""

import json
import subprocess
import sys
import zipfile

import pytest
from cli_helpers import plain_text, run
from run_helpers import installed_wheel

from vitcli.errors import ConfigError
from vitcli.settings.config import Config, load_config
from vitcli.settings.presets import NOT_MEASURED, all_presets, load_preset, names

REQUIRED = {
    "mnist-classic",
    "cifar10-classic",
    "cifar10-cnn",
    "mnist-fast",
    "cifar10-vit",
    "cifar10-cct",
    "mnist-cct",
    "small",
}


def test_the_required_presets_are_there_and_each_is_a_valid_run():
    assert set(names()) >= REQUIRED
    for preset in all_presets():
        config = load_config(None, preset=preset.name).validate()
        assert config.data.dataset == (preset.dataset or Config().data.dataset)  # None: any (`small`)
        assert preset.description
        if preset.reaches != NOT_MEASURED:  # a figure says where and how long, and how it was measured
            assert preset.on and preset.time and preset.measured_by, preset.name


def test_a_conv_tokenizer_preset_says_so_instead_of_a_patch_size():
    preset = load_preset("cifar10-cct")
    assert preset.model == "vit 128/conv3/4"
    spec = load_config(None, preset="cifar10-cct").model
    assert (spec.tokenizer, spec.conv_layers, spec.pool) == ("conv", 3, "cls")


def test_mnist_classic_is_the_teaching_model_and_cifar10_classic_theirs():
    classic = load_config(None, preset="mnist-classic").model
    assert (classic.embed_dim, classic.patch_size, classic.depth) == (32, 7, 2)
    cifar = load_config(None, preset="cifar10-classic").model
    assert (cifar.embed_dim, cifar.mlp_dim, cifar.depth, cifar.heads, cifar.patch_size) == (256, 512, 6, 8, 4)
    assert load_config(None, preset="cifar10-cnn").model.kind == "cnn"


def test_options_override_a_preset_and_a_preset_sits_under_a_config_file(tmp_path):
    config = load_config(None, {"model": {"embed_dim": 16}}, preset="mnist-classic")
    assert config.model.embed_dim == 16 and config.model.depth == 2
    file = tmp_path / "c.toml"
    file.write_text("[train]\nepochs = 1\n")
    assert load_config(file, preset="cifar10-classic").train.epochs == 1
    result = run("train", "--preset", "cifar10-classic", "--depth", "3", "--print-config")
    assert result.exit_code == 0
    assert "depth = 3" in result.output and "embed_dim = 256" in result.output


def test_an_unknown_preset_is_one_line_with_the_nearest_name():
    with pytest.raises(ConfigError, match="did you mean mnist-fast"):
        load_preset("mnist-fats")
    result = run("train", "--preset", "mnist-fats")
    assert result.exit_code != 0
    assert "did you mean mnist-fast" in result.output and "Traceback" not in result.output


def test_presets_lists_name_data_and_measured_figures():
    result = run("presets")
    assert result.exit_code == 0
    text = plain_text(result.output)
    for preset in all_presets():
        assert preset.name in text
    listed = json.loads(run("presets", "--json").output)
    assert {p["name"] for p in listed} == set(names())
    assert all("settings" in p and "reaches" in p for p in listed)


def test_a_resumed_run_takes_no_preset(tmp_path):
    result = run("train", "--resume", str(tmp_path), "--preset", "mnist-fast")
    assert result.exit_code != 0 and "--preset" in result.output


def test_the_presets_reach_the_wheel(tmp_path):
    """Build the wheel from a copy of the source (setuptools writes build files beside it), install it into
    a folder of its own and read the presets from there, away from the source tree."""
    wheel, target = installed_wheel(tmp_path)
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("vitcli/settings/presets/")}
    assert {f"vitcli/settings/presets/{name}.toml" for name in REQUIRED} <= shipped
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, vitcli.settings.presets as p; print(p.__file__); print(json.dumps(p.names()))",
        ],
        env={"PYTHONPATH": str(target), "PATH": ""},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(str(target))
    assert set(json.loads(out[1])) >= REQUIRED
