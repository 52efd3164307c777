import pytest

from vitcli.errors import ConfigError
from vitcli.settings.config import Config, DataConfig, load_config, load_toml


def write(tmp_path, text, name="c.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_file_overrides_defaults_and_options_override_file(tmp_path):
    path = write(tmp_path, "[model]\nembed_dim = 64\nheads = 4\n[train]\nlr = 0.001\nepochs = 3\n")
    cfg = load_config(path, {"model": {"heads": 8, "depth": None}, "train": {"epochs": 7}})
    assert cfg.model.embed_dim == 64  # from the file
    assert cfg.model.heads == 8  # option beats file
    assert cfg.model.depth == Config().model.depth  # option not given: default
    assert cfg.train.lr == 0.001 and cfg.train.epochs == 7


def test_toml_round_trip_gives_the_same_config(tmp_path):
    cfg = load_config(
        None, {"model": {"kind": "cnn", "dropout": 0.1}, "data": {"subset": 50, "augment": False}}
    )
    path = write(tmp_path, cfg.to_toml())
    assert load_config(path) == cfg


def test_ints_are_accepted_for_floats(tmp_path):
    assert load_config(write(tmp_path, "[train]\nlr = 1\n")).train.lr == 1.0


@pytest.mark.parametrize(
    "text, message",
    [
        ("[model]\nembed_dims = 3\n", r"unknown key 'embed_dims'.*embed_dim"),
        ("[modle]\n", r"unknown section \[modle\]"),
        ("[model]\nembed_dim = 'big'\n", r"\[model\] embed_dim must be int, got 'big'"),
        ("[data]\naugment = 1\n", r"augment must be bool"),
        ("[train]\nlr = ", r"not valid TOML"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text))


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_toml(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"model": {"kind": "resnet"}}, r"\[model\] kind must be one of vit, cnn, timm"),
        ({"model": {"pos_embed": "rope"}}, "--pos-embed must be one of learned, sinusoidal"),
        ({"model": {"depth": 0}}, "--depth must be a positive"),
        ({"train": {"batch_size": -1}}, "--batch-size must be a positive"),
        ({"train": {"lr": 0.0}}, "--lr must be positive"),
        ({"data": {"dataset": "imagenet"}}, "unknown dataset 'imagenet'"),
        ({"data": {"val_size": -5}}, "--val-size must be 0 or more"),
        ({"train": {"device": "tpu"}}, "--device must be auto, cpu, cuda"),
        ({"model": {"dropout": 1.0}}, r"--dropout must be in \[0, 1\)"),
    ],
)
def test_bad_values_are_refused_with_the_flag_name(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_combinations_are_checked_by_validate_so_a_sweep_can_record_them_as_one_failed_run():
    config = load_config(None, {"model": {"embed_dim": 30, "heads": 4}})
    with pytest.raises(ConfigError, match="--embed-dim 30 is not divisible by --heads 4"):
        config.validate()


def test_unset_values_are_comments_in_toml():
    text = Config().to_toml()
    assert "# mlp_dim = ...  (unset: 4 x embed_dim)" in text and "\nmlp_dim =" not in text


def test_evaluation_data_keeps_the_validation_hold_out_and_drops_subset_and_augmentation():
    trained = DataConfig(dataset="mnist", data_dir="/data", val_size=1000, subset=500, augment=True)
    assert trained.for_evaluation() == DataConfig(
        dataset="mnist", data_dir="/data", val_size=1000, augment=False
    )
    assert trained.for_evaluation("fashion-mnist", "/other") == DataConfig(
        "fashion-mnist", "/other", 1000, None, False
    )


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "..", "a" * 300])
def test_a_run_name_is_one_folder_inside_out(name):
    with pytest.raises(ConfigError, match="--name (must be a plain folder name|is 300 bytes long)"):
        load_config(None, {"run": {"name": name}})
