"""Seeded draws of images that keep every class: the validation and test images a `--subset` run is
evaluated on, and the test split held out of a plain image folder.

Both draws use fixed seeds, not the training seed, so that runs that differ only in `--seed` see the
same images, and a cached folder is split the same way on every load.
"""

from __future__ import annotations

import torch
from torch import Tensor

# With --subset N, validation and test are capped at max(N, SUBSET_EVAL_MIN) images each (an explicit
# --val-size is kept). Why N: evaluating is a forward pass only, so a split of N images costs about a
# third of an epoch of training on N, and the test accuracy rests on as many images as were trained on;
# the 10,000-image test sets stay whole from --subset 10000 up (the docs' small-data ablations). Why
# the floor: on 500 images an accuracy of 50-80% has a standard error of about 2 points already; on
# fewer, quick tries could not be told apart.
SUBSET_EVAL_MIN = 500


def eval_cap(subset: int) -> int:
    """The most validation and test images a run with `--subset subset` is evaluated on."""
    return max(subset, SUBSET_EVAL_MIN)


def stratified_order(labels: Tensor, seed: int) -> Tensor:
    """The indices of `labels` in the order to draw them: one image of every class first, then the rest
    in proportion to each class's size (each class's images in a seeded shuffle). The first N of this
    order are a class-stratified sample of N that covers every class when N is at least the number of
    classes."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    shuffled = labels[order]
    # Each image's place within its class, as a fraction of the class: 0 for each class's first image.
    place = torch.empty(len(labels), dtype=torch.float64)
    for label in shuffled.unique().tolist():
        members = (shuffled == label).nonzero().squeeze(1)
        place[members] = torch.arange(len(members), dtype=torch.float64) / len(members)
    return order[torch.argsort(place, stable=True)]


def draw(labels: Tensor, count: int, seed: int) -> Tensor:
    """The sorted indices of a seeded, class-stratified sample of `count` of `labels`."""
    return stratified_order(labels, seed)[:count].sort().values


def hold_out(labels: Tensor, fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """(kept, held out): sorted indices, `fraction` of each class's images (rounded half up) held out,
    drawn with `seed`."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    held = []
    for label in labels.unique().tolist():
        members = order[labels[order] == label]
        held.append(members[: int(len(members) * fraction + 0.5)])
    mask = torch.ones(len(labels), dtype=torch.bool)
    held_out = torch.cat(held).sort().values
    mask[held_out] = False
    return mask.nonzero().squeeze(1), held_out
