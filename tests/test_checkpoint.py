import json

import pytest
import torch
from safetensors.torch import save_file

from vitcli.checkpoint import load_checkpoint, read_metadata, save_checkpoint
from vitcli.config import Config, load_config
from vitcli.data import DatasetInfo
from vitcli.errors import CheckpointError
from vitcli.models import build_model

INFO = DatasetInfo("mnist", 1, 28, 28, [str(i) for i in range(10)], [0.1307], [0.3081], "digits")


@pytest.mark.parametrize("model_cfg", [{"name": "vit", "heads": 4, "pos_embed": "sinusoidal"}, {"name": "vit", "heads": 1}, {"name": "cnn"}])
def test_round_trip_gives_the_same_logits(tmp_path, model_cfg):
    cfg = load_config(None, {"model": model_cfg})
    model = build_model(cfg.model, INFO).eval()
    x = torch.randn(3, 1, 28, 28)
    save_checkpoint(tmp_path / "m.safetensors", model, cfg, INFO, {"test_accuracy": 0.5})
    loaded = load_checkpoint(tmp_path / "m.safetensors")
    assert loaded.config == cfg and loaded.info == INFO and loaded.metrics == {"test_accuracy": 0.5}
    torch.testing.assert_close(loaded.model(x), model(x), rtol=0, atol=0)


def test_metadata_is_readable_json(tmp_path):
    save_checkpoint(tmp_path / "m.safetensors", build_model(Config().model, INFO), Config(), INFO, {})
    meta = read_metadata(tmp_path / "m.safetensors")
    assert meta["format"] == "vitcli/1"
    assert json.loads(meta["config"])["model"]["embed_dim"] == 32
    assert json.loads(meta["dataset"])["classes"][3] == "3"
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


def test_weights_that_do_not_match_the_config(tmp_path):
    cfg = Config()
    save_checkpoint(tmp_path / "m.safetensors", build_model(cfg.model, INFO), cfg, INFO, {})
    # Rewrite the file with the same metadata but a wider model's weights.
    meta = read_metadata(tmp_path / "m.safetensors")
    wider = build_model(load_config(None, {"model": {"embed_dim": 64}}).model, INFO)
    save_file({k: v.contiguous() for k, v in wider.state_dict().items()}, str(tmp_path / "m.safetensors"), metadata=meta)
    with pytest.raises(CheckpointError, match=r"tensor '.*' is \(.*64.*\) but the config builds"):
        load_checkpoint(tmp_path / "m.safetensors")


def test_a_run_directory_can_be_passed(tmp_path):
    save_checkpoint(tmp_path / "model.safetensors", build_model(Config().model, INFO), Config(), INFO, {})
    assert load_checkpoint(tmp_path).info == INFO


def test_a_directory_without_a_checkpoint_says_so(tmp_path):
    with pytest.raises(CheckpointError, match="is a directory without model.safetensors"):
        load_checkpoint(tmp_path)
