"""The batch size, learning rate and warmup of a run on a small training set.

A ViT leaves chance only after some tens of optimiser steps, whatever its learning rate. At the default
batch of 128, a set of 1,300 images is 11 steps an epoch, so a 30-epoch run sat at chance for 5-8 epochs
and ended at 73% on UCI's digits, where the same model with 41 steps an epoch ends at 88-90%
(docs/small-data.md, "Small sets", has the runs). So when `--batch-size` is not given, a training set of
fewer than MIN_STEPS x 128 images gets the largest power-of-two batch that makes an epoch at least
MIN_STEPS steps (16 at the least), the learning rate scaled by batch/128 (the linear scaling rule, as in
DeiT: a smaller batch's noisier gradient wants a smaller step; 1e-2 at batch 32 ended at 72%), and a warmup
of at least WARMUP_MIN_STEPS steps. The values chosen are written into the run's config, so a resumed run
and the config's command train the same way; sets of 5,120 images and more train exactly as before.
"""

from __future__ import annotations

import dataclasses

from vitcli.settings.config import TrainConfig

FULL_BATCH = 128  # the batch size of every set that is not small, and the one --lr is given for
MIN_STEPS = 40  # optimiser steps an epoch of a small set gets at the least
MIN_BATCH = 16  # below this a step's gradient is mostly noise, and a CPU step mostly overhead
WARMUP_MIN_STEPS = 50  # the measured runs left chance within 2-3 epochs of 41 steps with 50 to 100


def for_training_set(train: TrainConfig, images: int, processes: int = 1) -> tuple[TrainConfig, str | None]:
    """`train` with its batch size resolved for a training set of `images` images, and the line that says
    what was chosen (None when nothing was: the batch size was given, or the set is not small). The batch
    stays a multiple of `processes`, the data-parallel ranks it is split over."""
    if train.batch_size is not None:
        return train, None
    batch = FULL_BATCH
    while batch > MIN_BATCH and images < MIN_STEPS * batch:
        batch //= 2
    if batch == FULL_BATCH or batch % processes:
        return dataclasses.replace(train, batch_size=FULL_BATCH), None
    steps = max(1, images // batch)  # an epoch's steps: training drops the last, partial batch
    lr = train.lr * batch / FULL_BATCH
    warmup = max(train.warmup, WARMUP_MIN_STEPS / steps)
    resolved = dataclasses.replace(train, batch_size=batch, lr=lr, warmup=round(warmup, 4))
    line = (
        f"a small training set ({images:,} images): batch size {batch} ({steps} steps an epoch), lr {lr:g} "
        f"({train.lr:g} x {batch}/{FULL_BATCH}) and {resolved.warmup:g} epochs of warmup (at least "
        f"{WARMUP_MIN_STEPS} steps); pass --batch-size to choose yourself"
    )
    return resolved, line
