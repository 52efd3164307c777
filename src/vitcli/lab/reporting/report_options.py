"""What a report may be asked for (`vitcli report`'s options, `make_report`'s `Options`)."""

from __future__ import annotations

from dataclasses import dataclass

ATTENTION_IMAGES = 3  # test images shown per ViT


@dataclass
class Options:
    baseline: str | None = None  # a run's label or directory; default: `ranking.choose_baseline`
    data_dir: str | None = None  # where the runs' data sets are, for the attention figures
    images: int = ATTENTION_IMAGES
    device: str = "auto"
    look: bool = True  # draw what the ViTs look at (loads data and models)
