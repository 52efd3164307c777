"""Which of a model's outputs each class of a data set is: classes are matched by name, never silently by
position.

A checkpoint knows its classes by name, in the order of its outputs. Another data set of the same shape
(an image folder of real digits, Fashion-MNIST) lists its own classes in its own order: ImageFolder sorts
folder names, so folders named `zero` ... `nine` come as eight, five, four, nine, one, ... Pairing them
by position scores a good model at chance. So:

- the same names in the same order: the identity;
- the same names in another order: the data's label i becomes the model's index of the data's class i;
- names that differ: a ConfigError naming them, unless the caller asks to pair them by position
  (`--match-by-position`), which then holds whatever the names say.

Names are compared exactly, with two conservative allowances, and only when they pair every class with
exactly one class of the other side:

- case and surrounding spaces are ignored (`Cat` is `cat`);
- a name written `<A> - <B>`, as torchvision's MNIST writes `3 - three`, also matches a plain name (one
  without ` - `) equal to A or to B: a folder named `3` or `three`. Two names that both have the
  ` - ` form must be equal as a whole (`3 - three` is not `3 - drei`).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from vitcli.data.datasets import DatasetInfo
from vitcli.errors import CheckpointError, ConfigError

SHOWN = 4  # names listed in a message before "..."


@dataclass(frozen=True)
class ClassMap:
    """How a data set's labels become a model's output indices: label i -> mapping[i]."""

    mapping: tuple[int, ...]
    by: str  # "name" or "position"
    data_classes: tuple[str, ...]  # the data's name for each of the model's classes, in the model's order
    note: str | None = None  # a line for the user when the pairing is not the plain identity of names

    def apply(self, labels: Tensor) -> Tensor:
        """The data's labels as the model's class indices."""
        if self.mapping == tuple(range(len(self.mapping))):
            return labels
        return labels.new_tensor(self.mapping)[labels]


CHECKPOINT = "the checkpoint"  # the model in messages, unless a caller names it (inspect --against)


def match_classes(
    trained: list[str],
    data: list[str],
    by_position: bool = False,
    data_name: str = "the data",
    model_name: str = CHECKPOINT,
) -> ClassMap:
    """Pair the data's classes with the model's (`trained`, in output order), by name; see the module's
    docstring. `by_position` pairs them in order instead when the names are not identical. `model_name`
    and `data_name` say which is which in messages (`inspect --against` pairs two checkpoints)."""
    if len(trained) != len(data):
        advice = (
            "evaluate it on data with the same classes"
            if model_name == CHECKPOINT
            else "compare two models of the same classes"
        )
        raise ConfigError(
            f"{model_name} has {len(trained)} classes but {data_name} has {len(data)}; {advice}"
        )
    if list(trained) == list(data):
        return ClassMap(tuple(range(len(data))), "name", tuple(data))
    partners = [[j for j, t in enumerate(trained) if same_class(d, t)] for d in data]
    by_name = _bijection(partners, len(trained))
    if by_position:
        return _by_position(trained, data, by_name, data_name, model_name)
    if by_name is None:
        raise ConfigError(_differ_message(trained, data, partners, data_name, model_name))
    data_classes = [""] * len(trained)
    for i, j in enumerate(by_name):
        data_classes[j] = data[i]
    exact = sorted(trained) == sorted(data)
    if exact:
        note = f"classes matched by name: {data_name} lists them in another order than {model_name}"
    else:
        pairs = [f"{data[i]} is {trained[j]}" for i, j in enumerate(by_name) if data[i] != trained[j]]
        note = f"classes matched by name, {data_name} to {model_name}: {_few(pairs)}"
    return ClassMap(tuple(by_name), "name", tuple(data_classes), note)


def same_class(a: str, b: str) -> bool:
    """Whether two class names name the same class (see the module's docstring)."""
    a, b = a.strip().casefold(), b.strip().casefold()
    if a == b:
        return True
    for long, short in ((a, b), (b, a)):
        parts = _dash_parts(long)
        if parts and not _dash_parts(short) and short in parts:
            return True
    return False


def fit_data(trained: DatasetInfo, info: DatasetInfo, dataset: str, by_position: bool = False) -> ClassMap:
    """Check that data described by `info` (named `dataset`) can go through a model trained on `trained`
    (the same image shape and number of classes), and pair its classes with the model's."""

    def shape(i: DatasetInfo) -> tuple:
        return (i.channels, i.height, i.width, len(i.classes))

    if shape(info) != shape(trained):
        raise CheckpointError(
            f"the checkpoint was trained on {trained.describe()} but {dataset} has "
            f"{info.describe()}; evaluate it on data of the same shape and number of classes"
        )
    return match_classes(trained.classes, info.classes, by_position, dataset)


def _dash_parts(name: str) -> tuple[str, str] | None:
    left, sep, right = name.partition(" - ")
    if not sep or " - " in right or not left.strip() or not right.strip():
        return None
    return left.strip(), right.strip()


def _bijection(partners: list[list[int]], n: int) -> list[int] | None:
    """data i -> its one partner, when every class on both sides has exactly one."""
    if any(len(p) != 1 for p in partners):
        return None
    mapping = [p[0] for p in partners]
    return mapping if sorted(mapping) == list(range(n)) else None


def _by_position(
    trained: list[str], data: list[str], by_name: list[int] | None, data_name: str, model_name: str
) -> ClassMap:
    identity = tuple(range(len(data)))
    if by_name is not None and tuple(by_name) == identity:  # the same names, only spelt differently
        return ClassMap(identity, "position", tuple(data))
    pairs = [f"{d} is {t}" for t, d in zip(trained, data) if t != d]
    note = f"classes matched by position (--match-by-position), {data_name} to {model_name}: {_few(pairs)}"
    if by_name is not None:
        note += "; by name they would pair differently (leave out --match-by-position for that)"
    return ClassMap(identity, "position", tuple(data), note)


def _differ_message(
    trained: list[str], data: list[str], partners: list[list[int]], data_name: str, model_name: str
) -> str:
    count = [0] * len(trained)
    for p in partners:
        for j in p:
            count[j] += 1
    checkpoint_only = [t for j, t in enumerate(trained) if count[j] != 1]
    data_only = [d for d, p in zip(data, partners) if len(p) != 1]
    of_data = "the data's" if model_name == CHECKPOINT else f"{data_name}'s"  # data, or another model
    unmatched = []
    if checkpoint_only:
        unmatched.append(f"{model_name}'s {_few(checkpoint_only)}")
    if data_only:
        unmatched.append(f"{of_data} {_few(data_only)}")
    rename = (
        "rename the data's class folders to the checkpoint's names, or " if of_data == "the data's" else ""
    )
    return (
        f"the classes of {data_name} are not {model_name}'s; names without a match: "
        f"{' and '.join(unmatched)}; {rename}pass --match-by-position to pair classes by position"
    )


def _few(names: list[str]) -> str:
    if len(names) <= SHOWN:
        return ", ".join(names)
    return ", ".join(names[:SHOWN]) + f", ... ({len(names)} in all)"
