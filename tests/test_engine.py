import pytest
import torch

from vitcli.data import load_splits
from vitcli.data.batches import Augmentation
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import TrainingDiverged
from vitcli.events import EpochMetrics, StepDone
from vitcli.models.build import build_module
from vitcli.settings.config import DataConfig, load_config
from vitcli.training.engine import cross_entropy, fit
from vitcli.training.evaluation import evaluate
from vitcli.training.optim import warmup_cosine

CPU = torch.device("cpu")


def test_warmup_then_cosine_to_zero():
    f = warmup_cosine(warmup_steps=4, total_steps=14)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == pytest.approx(0.5) and f(14) == pytest.approx(0.0)
    assert all(f(s) >= f(s + 1) for s in range(4, 14))


def _fit(mnist_dir, events=None, criterion=None, **train):
    cfg = load_config(
        None, {"data": {"data_dir": str(mnist_dir)}, "train": {"epochs": 2, "batch_size": 64, **train}}
    )
    splits = load_splits(cfg.data, download=False)
    torch.manual_seed(cfg.train.seed)
    model = build_module(cfg.model, splits.info)
    result = fit(
        model,
        splits,
        cfg.train,
        CPU,
        _preprocess(splits),
        augment=Augmentation("digits"),
        on_event=(events.append if events is not None else None),
        criterion=criterion,
    )
    return model, splits, result


def _preprocess(splits):
    return Preprocessing(splits.stats.mean, splits.stats.std).on(CPU)


def test_training_learns_and_reports_events(mnist_dir):
    events = []
    model, splits, result = _fit(mnist_dir, events, lr=1e-2, epochs=5, batch_size=32)
    epochs = [e for e in events if isinstance(e, EpochMetrics)]
    steps = [e for e in events if isinstance(e, StepDone)]
    assert [e.epoch for e in epochs] == [1, 2, 3, 4, 5] and steps[-1].step == steps[-1].steps
    assert epochs[-1].train_loss < epochs[0].train_loss
    accuracy = evaluate(model, splits.test, _preprocess(splits), CPU, 10).accuracy
    assert accuracy > 0.5  # chance is 0.1


def test_same_seed_same_weights_on_cpu(mnist_dir):
    a, _, ra = _fit(mnist_dir, seed=3)
    b, _, rb = _fit(mnist_dir, seed=3)
    c, _, _ = _fit(mnist_dir, seed=4)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert [m.train_loss for m in ra.history] == [m.train_loss for m in rb.history]
    assert not torch.equal(a.head.weight, c.head.weight)


def test_best_validation_weights_are_kept(mnist_dir, monkeypatch):
    from vitcli.training import engine

    # Validation accuracy that peaks in epoch 2 of 3: the model must end with epoch 2's weights.
    accuracies = iter([0.3, 0.9, 0.5])
    snapshots = []
    real = engine.evaluate

    def fake_evaluate(*args, **kwargs):
        snapshots.append(args[0].head.weight.detach().clone())
        result = real(*args, **kwargs)
        result.accuracy = next(accuracies)
        return result

    monkeypatch.setattr(engine, "evaluate", fake_evaluate)
    model, _, result = _fit(mnist_dir, epochs=3)
    assert result.best_epoch == 2
    assert torch.equal(model.head.weight, snapshots[1])


def test_diverging_loss_stops_with_a_clear_error(mnist_dir):
    with pytest.raises(TrainingDiverged, match="lower --lr"):
        _fit(mnist_dir, lr=1e6, warmup=0.0, epochs=1)


def test_confusion_matrix_counts_every_image(mnist_dir):
    splits = load_splits(DataConfig(data_dir=str(mnist_dir)), download=False)
    model = build_module(load_config(None).model, splits.info)
    result = evaluate(model, splits.test, _preprocess(splits), CPU, 10, batch_size=64)
    assert sum(map(sum, result.confusion)) == len(splits.test) == result.count
    assert result.accuracy == pytest.approx(sum(result.confusion[i][i] for i in range(10)) / result.count)


def test_a_model_kind_can_bring_its_own_loss_without_touching_the_engine(mnist_dir):
    """`criterion` gets the model's output with the inputs of the same augmented batch (what a teacher for
    distillation needs) and returns the loss and the logits scored for accuracy."""
    seen = []

    def plain(outputs, inputs, labels, smoothing):
        seen.append(inputs.shape)
        return cross_entropy(outputs, inputs, labels, smoothing)

    def smoothed(outputs, inputs, labels, smoothing):
        return cross_entropy(outputs, inputs, labels, 0.5)

    default, _, _ = _fit(mnist_dir, epochs=1)
    same, splits, _ = _fit(mnist_dir, epochs=1, criterion=plain)
    other, _, _ = _fit(mnist_dir, epochs=1, criterion=smoothed)
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), same.state_dict().values()))
    assert not torch.equal(default.head.weight, other.head.weight)
    assert seen == [(64, 1, 28, 28)] * (len(splits.train) // 64)
