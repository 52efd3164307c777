"""Which classes and how many images of each a run trains on: `--classes` and `--per-class`.

`--classes` keeps some classes of every split, relabelled 0.. in the order given, so that a model trained
on them has one output per chosen class. `--per-class N` draws N training images of each class with a
fixed seed, the same for every --seed, so that a study of how accuracy grows with the data compares runs
on the same images, and a larger N holds a smaller one's images. Both work on labels and return indices;
`datasets.py` cuts the splits.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vitcli.errors import DataError
from vitcli.settings.suggest import did_you_mean


def chosen_classes(classes: str, names: list[str], dataset: str) -> list[int]:
    """The class numbers `classes` names (comma-separated names, or numbers where no class has that
    name: MNIST's classes are named "0 - zero", ...), in the order given."""
    chosen = []
    for name in (part.strip() for part in classes.split(",")):
        if name in names:
            chosen.append(names.index(name))
        elif name.isdigit() and int(name) < len(names):
            chosen.append(int(name))
        else:
            raise DataError(
                f"--classes: {dataset} has no class {name!r}; {did_you_mean(name, names)}"
                f"its classes are {', '.join(names)} (or their numbers, 0 to {len(names) - 1})"
            )
    if len(set(chosen)) != len(chosen):
        raise DataError(f"--classes {classes!r} names one class of {dataset} twice; give each once")
    return chosen


def relabelled(labels: Tensor, chosen: list[int], classes: int) -> tuple[Tensor, Tensor]:
    """(the indices of the images of the chosen classes, their new labels: 0.. in the order chosen)."""
    relabel = torch.full((classes,), -1, dtype=torch.int64)
    relabel[torch.tensor(chosen)] = torch.arange(len(chosen))
    keep = (relabel[labels] >= 0).nonzero().squeeze(1)
    return keep, relabel[labels[keep]]


def per_class(labels: Tensor, count: int, names: list[str], dataset: str) -> Tensor:
    """The sorted indices of `count` images of each class: the first of a seeded shuffle (seed 1, as
    --subset's), so that runs differing only in --seed train on the same images, and a larger count
    holds a smaller."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    keep = []
    for label, name in enumerate(names):
        members = order[labels[order] == label]
        if len(members) < count:
            raise DataError(
                f"--per-class {count}: class {name!r} of {dataset} has only {len(members)} training "
                f"images (after validation is held out); use --per-class {len(members)} or fewer"
            )
        keep.append(members[:count])
    return torch.cat(keep).sort().values
