"""What a model spec builds for a training run (`models/build.py` builds it): the module and everything a
run needs beside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from vitcli.data.preprocessing import Preprocessing
from vitcli.models.distillation import Teacher
from vitcli.models.pretrained import Adaptation
from vitcli.settings.specs import ModelSpec

Emit = Callable[[Any], None]


@dataclass
class Built:
    """What a spec builds for a training run."""

    spec: ModelSpec  # exactly the module's spec (a timm spec with its image and patch size resolved)
    module: nn.Module
    preprocessing: Preprocessing
    param_groups: list[dict] | None = None  # optimiser groups with an "lr_scale" each; None: the engine's
    adaptation: Adaptation | None = None  # what was changed to fit pretrained weights to the data
    criterion: Callable | None = None  # the training loss (engine.Criterion); None: cross-entropy
    teacher: Teacher | None = None  # the model a distilled ViT learns from (its cost goes in the report)
    transfer: Any = None  # --init: where the first weights came from (training/transfer.py's Transfer)
