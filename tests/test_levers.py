"""The small-data levers act as they say: mixup and cutmix, drop path, the moving average of the weights,
gradient clipping, and a run with every lever on that is deterministic and resumes exactly.
(RandAugment and random erasing: tests/test_augment.py; exact resume with every lever on:
tests/test_resume.py.)"""

import json

import pytest
import torch
from run_helpers import LEVERS, assert_same_tensors, settings, tensors, with_levers

from vitcli.data import load_splits
from vitcli.data.batches import Augmentation, Batches
from vitcli.data.datasets import Split
from vitcli.data.mixing import Mixing
from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import ConfigError
from vitcli.lab.evaluate import eval_checkpoint
from vitcli.models.build import build_module
from vitcli.models.vit import ViT, drop_path_module
from vitcli.settings.config import load_config
from vitcli.training.averaging import EMA, RAW, BestWeights
from vitcli.training.checkpoint import read_metadata
from vitcli.training.engine import cross_entropy, fit
from vitcli.training.evaluation import EvalResult
from vitcli.training.run import train_run

CPU = torch.device("cpu")


def _numbered_batch(n=16, classes=16):
    """Image i is filled with the value i and has label i, so a mixed image says which images it mixes."""
    images = torch.arange(n, dtype=torch.float32)[:, None, None, None].expand(n, 1, 8, 8).clone()
    return images, torch.arange(n) % classes


# --- mixup and cutmix --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mixed_targets_sum_to_one_and_mix_each_image_with_its_neighbour(kind):
    torch.manual_seed(1)
    images, labels = _numbered_batch()
    mixing = Mixing(
        mixup=0.8 if kind == "mixup" else 0, cutmix=1.0 if kind == "cutmix" else 0, num_classes=16
    )
    for _ in range(5):
        mixed, targets = mixing(images.clone(), labels)
        assert mixed.shape == images.shape and targets.shape == (16, 16)
        torch.testing.assert_close(targets.sum(1), torch.ones(16))
        for i in range(16):
            partner = (i - 1) % 16  # torchvision mixes each image with the one before it (a roll by one)
            share = targets[i, i].item()
            assert targets[i].nonzero().flatten().tolist() in ([i], sorted([i, partner]))
            assert targets[i, partner].item() == pytest.approx(1 - share, abs=1e-6)
            if kind == "mixup":  # every pixel is the same blend of the two images
                expected = share * i + (1 - share) * partner
                torch.testing.assert_close(mixed[i], torch.full_like(mixed[i], expected))
            else:  # every pixel comes from one of the two, in the proportion the target says
                values = mixed[i].flatten()
                assert set(values.tolist()) <= {float(i), float(partner)}
                assert (values == i).float().mean().item() == pytest.approx(share, abs=1e-6)


def test_mixing_both_picks_one_of_the_two_per_batch():
    torch.manual_seed(0)
    images, labels = _numbered_batch()
    mixing = Mixing(mixup=1.0, cutmix=1.0, num_classes=16)
    kinds = set()
    for _ in range(20):
        mixed, _ = mixing(images.clone(), labels)
        pure = all(set(mixed[i].flatten().tolist()) <= {float(i), float((i - 1) % 16)} for i in range(16))
        kinds.add("cutmix" if pure else "mixup")
    assert kinds == {"mixup", "cutmix"}


def test_the_last_mix_off_epochs_train_on_plain_labels(mnist_dir):
    """--mix-off-epochs 1 of 3: the loss sees soft targets in epochs 1 and 2 and class indices in 3."""
    cfg = load_config(
        None,
        {
            "data": {"data_dir": str(mnist_dir), "mixup": 0.8, "mix_off_epochs": 1},
            "train": {"epochs": 3, "batch_size": 100},
        },
    )
    splits = load_splits(cfg.data)
    seen = []

    def criterion(outputs, inputs, labels, smoothing):
        seen.append(labels.ndim)
        return cross_entropy(outputs, inputs, labels, smoothing)

    steps = 500 // 100  # 600 fake images less 10% validation, batch 100
    fit(
        build_module(cfg.model, splits.info),
        splits,
        cfg.train,
        CPU,
        Preprocessing(splits.stats.mean, splits.stats.std).on(CPU),
        augment=Augmentation.of(cfg.data, splits.info.family),
        criterion=criterion,
    )
    assert seen == [2] * (2 * steps) + [1] * steps


# --- drop path ---------------------------------------------------------------------------------------


def test_drop_path_drops_whole_branches_at_the_rate_in_training_and_is_identity_in_eval():
    torch.manual_seed(0)
    drop = drop_path_module(0.3)
    branch = torch.ones(4000, 5, 8)  # (images, tokens, dims)
    out = drop(branch)
    per_image = out.flatten(1)
    dropped = (per_image == 0).all(1)
    kept = torch.isclose(per_image, torch.tensor(1 / 0.7)).all(1)
    assert bool((dropped | kept).all())  # each image's branch is dropped whole or kept whole (rescaled)
    assert dropped.float().mean().item() == pytest.approx(0.3, abs=0.03)
    drop.eval()
    assert torch.equal(drop(branch), branch)


def test_drop_path_rises_linearly_over_the_blocks_and_leaves_eval_outputs_unchanged():
    torch.manual_seed(0)
    kwargs = {
        "image_size": (8, 8),
        "in_channels": 1,
        "num_classes": 3,
        "embed_dim": 8,
        "patch_size": 4,
        "depth": 4,
        "heads": 2,
    }
    dropped = ViT(**kwargs, drop_path=0.3)
    rates = [getattr(block.drop_path, "drop_prob", 0.0) for block in dropped.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2, 0.3])
    plain = ViT(**kwargs)
    plain.load_state_dict(dropped.state_dict())  # no weights of its own: the checkpoint is the same
    x = torch.randn(6, 1, 8, 8)
    dropped.eval(), plain.eval()
    assert torch.equal(dropped(x), plain(x))
    dropped.train()
    assert not torch.equal(dropped(x), plain(x))


def test_drop_path_on_the_cnn_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="--drop-path .* cnn model has none"):
        load_config(None, {"model": {"kind": "cnn"}, "train": {"drop_path": 0.1}}).validate()


# --- the moving average and which weights are kept ----------------------------------------------------


def test_the_average_after_one_step_is_decay_times_before_plus_the_rest_times_after(mnist_dir):
    """Through the engine: one optimiser step of batch 600 (one step per epoch), then the formula."""
    cfg = load_config(
        None,
        {
            "data": {"data_dir": str(mnist_dir), "val_size": 0},
            "train": {"epochs": 1, "batch_size": 600, "ema": 0.9},
        },
    )
    splits = load_splits(cfg.data)
    model = build_module(cfg.model, splits.info)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ema_states = []
    fit(
        model,
        splits,
        cfg.train,
        CPU,
        Preprocessing(splits.stats.mean, splits.stats.std).on(CPU),
        on_snapshot=lambda snapshot, improved: ema_states.append((snapshot.ema, snapshot.model)),
    )
    ema, after = ema_states[-1]
    for key in before:
        assert not torch.equal(after[key], before[key]) or key.endswith("bias")
        torch.testing.assert_close(ema[key], 0.9 * before[key] + 0.1 * after[key])
    # No validation split: the run keeps the average, not the raw weights.
    torch.testing.assert_close(model.state_dict(), ema)


def test_best_weights_keep_whichever_validated_better_and_say_which():
    raw, averaged = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    def result(accuracy, loss=1.0):
        return EvalResult(loss, accuracy, 10, [[0]])

    best = BestWeights(last_epoch=3)
    assert best.offer(1, [(RAW, raw, result(0.5)), (EMA, averaged, result(0.6))])
    assert best.source == EMA and best.epoch == 1
    assert torch.equal(best.state["weight"], averaged.weight)
    assert best.offer(2, [(RAW, raw, result(0.7)), (EMA, averaged, result(0.7))])  # a tie: the raw weights
    assert best.source == RAW and torch.equal(best.state["weight"], raw.weight)
    assert not best.offer(3, [(RAW, raw, result(0.6)), (EMA, averaged, result(0.65))])
    assert best.epoch == 2


def test_a_run_with_ema_validates_both_and_its_checkpoint_holds_and_names_the_better(tmp_path, mnist_dir):
    cfg = load_config(None, settings(mnist_dir, tmp_path, epochs=3, ema=0.5))
    result = train_run(cfg)
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    epochs = [line for line in lines if "ema_val_accuracy" in line]
    assert len(epochs) == 3 and all(line["ema_val_accuracy"] is not None for line in epochs)
    metrics = json.loads(read_metadata(result.run_dir / "model.safetensors")["metrics"])
    assert metrics["weights"] == result.weights in (RAW, EMA)
    best = result.best
    expected = best.ema_val_accuracy if result.weights == EMA else best.val_accuracy
    assert eval_checkpoint(result.run_dir / "model.safetensors", split="val").result.accuracy == expected


# --- gradient clipping -------------------------------------------------------------------------------


def test_clip_grad_bounds_the_gradient_norm_the_optimiser_steps_with(mnist_dir):
    cfg = load_config(None, {"data": {"data_dir": str(mnist_dir)}, "train": {"epochs": 1, "clip_grad": 0.01}})
    splits = load_splits(cfg.data)
    model = build_module(cfg.model, splits.info)
    norms = []
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.optim.AdamW, "step", step)
        fit(model, splits, cfg.train, CPU, Preprocessing(splits.stats.mean, splits.stats.std).on(CPU))
    assert norms and max(norms) <= 0.01 * 1.0001


# --- every lever at once -----------------------------------------------------------------------------


def _all_levers(mnist_dir, out, **train):
    return load_config(
        None, with_levers(settings(mnist_dir, out), {**LEVERS, "train": {**LEVERS["train"], **train}})
    )


def test_every_lever_on_is_deterministic_for_a_seed_on_the_cpu(tmp_path, mnist_dir):
    runs = [train_run(_all_levers(mnist_dir, tmp_path / str(i))) for i in range(2)]
    assert_same_tensors(*(tensors(r.run_dir / "model.safetensors") for r in runs))
    assert [m.train_loss for m in runs[0].history] == [m.train_loss for m in runs[1].history]
    other = train_run(_all_levers(mnist_dir, tmp_path / "other", seed=1))
    assert other.history[0].train_loss != runs[0].history[0].train_loss


def test_batches_yield_soft_targets_only_when_mixing(mnist_dir):
    splits = load_splits(load_config(None, {"data": {"data_dir": str(mnist_dir)}}).data)
    preprocess = Preprocessing(splits.stats.mean, splits.stats.std).on(CPU)
    train = Split(splits.train.images, splits.train.labels)
    batches = Batches(train, 32, CPU, preprocess, augment=Augmentation("digits", mixup=0.8), num_classes=10)
    (_, mixed), (_, plain) = next(batches.epoch()), next(batches.epoch(mix=False))
    assert mixed.shape == (32, 10) and plain.shape == (32,)


def test_a_timm_vit_gets_drop_path_rising_over_its_blocks():
    from vitcli.data.datasets import DatasetInfo
    from vitcli.settings.specs import TimmSpec

    info = DatasetInfo("mnist", 1, 28, 28, [str(i) for i in range(10)], "digits")
    spec = TimmSpec(name="vit_tiny_patch16_224", pretrained="none", img_size=28, patch_size=7)
    with torch.device("meta"):
        vit = build_module(spec, info, drop_path=0.2)
    rates = [getattr(block.drop_path1, "drop_prob", 0.0) for block in vit.model.blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2) and rates == sorted(rates)
