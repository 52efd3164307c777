"""The short API at the top of the package (`import vitcli`): train, resume, evaluate, load, load_config."""

import torch

import vitcli


def test_train_evaluate_load_and_resume_through_the_short_api(mnist_dir, tmp_path):
    settings = {
        "data": {"data_dir": str(mnist_dir)},
        "train": {"epochs": 1, "batch_size": 64, "device": "cpu"},
        "run": {"out": str(tmp_path / "runs"), "name": "api"},
    }
    result = vitcli.train(model={"embed_dim": 16, "heads": 2}, **settings)
    assert result.run_dir == tmp_path / "runs" / "api" and result.config.model.embed_dim == 16
    report = vitcli.evaluate(result.run_dir)
    assert report.result.accuracy == result.test.accuracy
    checkpoint = vitcli.load(result.run_dir)
    assert checkpoint.config == result.config and isinstance(checkpoint.model, torch.nn.Module)

    resumed = vitcli.resume(result.run_dir, train={"epochs": 2})
    assert [m.epoch for m in resumed.history] == [1, 2]


def test_train_takes_a_config_file_and_overrides_it(mnist_dir, tmp_path):
    config = vitcli.load_config(None, {"model": {"kind": "cnn"}, "data": {"data_dir": str(mnist_dir)}})
    path = tmp_path / "cnn.toml"
    path.write_text(config.to_toml())
    result = vitcli.train(path, train={"epochs": 1, "device": "cpu"}, run={"out": str(tmp_path / "runs")})
    assert result.config.model.kind == "cnn" and result.config.train.epochs == 1
