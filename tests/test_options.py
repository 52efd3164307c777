"""Every option declared once: each settings field carries its own option (help, group, spelling), and
train, finetune and sweep take theirs from those fields (cli/options.py). Each field has exactly one
option and each option one field; TOML's keys are the same fields."""

import dataclasses

import pytest
from cli_helpers import run, runner
from typer.main import get_command

from vitcli.cli import app
from vitcli.cli.options import KIND, command_settings
from vitcli.settings.config import SECTIONS, Config, DataConfig, RunConfig, TrainConfig
from vitcli.settings.fields import options_of
from vitcli.settings.specs import SPECS, CNNSpec, TimmSpec, ViTSpec

TABLES = {
    "train": [
        ("model", ViTSpec),
        ("model", CNNSpec),
        ("data", DataConfig),
        ("train", TrainConfig),
        ("run", RunConfig),
    ],
    "finetune": [("model", TimmSpec), ("data", DataConfig), ("train", TrainConfig), ("run", RunConfig)],
    "sweep": [("model", ViTSpec), ("model", CNNSpec), ("data", DataConfig), ("train", TrainConfig)],
}


def fields_of(command: str) -> set[tuple[str, str]]:
    return {(section, f.name) for section, cls in TABLES[command] for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls", [*SECTIONS.values(), *SPECS.values()], ids=lambda c: c.__name__)
def test_every_settings_field_declares_its_option(cls):
    assert options_of(cls) == list(dataclasses.fields(cls))


@pytest.mark.parametrize("command", TABLES)
def test_every_field_has_exactly_one_option_and_every_option_one_field(command):
    settings = command_settings(command)
    pairs = [(s.section, s.key) for s in settings if s is not KIND]
    assert len(pairs) == len(set(pairs)), "a field with two options"
    assert set(pairs) == fields_of(command)
    flags = [s.flag for s in settings]
    assert len(flags) == len(set(flags)), "two fields with one option"
    assert (KIND in settings) == (command != "finetune")  # finetune's kind is timm, its --model the name


@pytest.mark.parametrize("command", TABLES)
def test_the_command_offers_every_option_of_its_table_and_declares_none_itself(command):
    click_command = get_command(app).get_command(None, command)
    settings = command_settings(command)
    own = [p for p in click_command.params if p.name not in {s.param for s in settings}]
    offered = {opt for p in click_command.params for opt in p.opts}
    assert {s.flag for s in settings} <= offered
    assert not {opt for p in own for opt in p.opts} & {s.flag for s in settings}


def test_toml_keys_are_the_same_fields():
    written = Config().to_dict()
    for section, cls in SECTIONS.items():
        assert set(written[section]) == {f.name for f in dataclasses.fields(cls)}
    assert set(written["model"]) == {"kind"} | {f.name for f in dataclasses.fields(ViTSpec)}


def test_a_value_of_each_section_reaches_the_config():
    result = run(
        "train",
        "--print-config",
        "--embed-dim",
        "48",
        "--no-augment",
        "--epochs",
        "3",
        "--name",
        "x",
        "--pool",
        "gap",
    )
    assert result.exit_code == 0, result.output
    for line in ("embed_dim = 48", "augment = false", "epochs = 3", 'name = "x"', 'pool = "gap"'):
        assert line in result.stdout
    tuned = run("finetune", "--print-config", "--model", "vit_tiny_patch16_224", "--freeze", "backbone")
    assert tuned.exit_code == 0, tuned.output
    assert 'kind = "timm"' in tuned.stdout and 'name = "vit_tiny_patch16_224"' in tuned.stdout


def test_help_quotes_each_commands_own_defaults():
    train = " ".join(runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).stdout.split())
    tuned = " ".join(runner.invoke(app, ["finetune", "--help"], env={"COLUMNS": "300"}).stdout.split())
    assert "[default: 0.01]" in train and "[default: 0.0001]" in tuned
    assert "[default: 4 x embed_dim]" in train and "[default: imagenet]" in tuned
    assert "'vitcli[tensorboard]'" in train  # the settings' help is plain text, not rich markup
    sweep = " ".join(runner.invoke(app, ["sweep", "--help"], env={"COLUMNS": "300"}).stdout.split())
    assert sweep.index("--dry-run") < sweep.index("Token width of the ViT")  # its own options lead its help
