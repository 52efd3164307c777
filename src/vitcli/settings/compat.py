"""Reading what vitcli 0.1.0 wrote: its config.toml files and checkpoint metadata.

0.1.0 named the model kind `[model] name` and gave every kind the ViT's fields; a fine-tuned timm ViT
had `[model] name = "timm"` and its settings in a `[finetune]` section (the timm model under `model`).
Its checkpoints ("vitcli/1") kept the normalisation in the data set's description, and a timm model
resized and repeated its input inside the module. These functions turn each into today's shape, so
0.1.0 run directories load, evaluate and draw attention as before.
"""

from __future__ import annotations

from typing import Any

KINDS_0_1 = ("vit", "cnn", "timm")


def upgrade_settings(values: dict[str, Any]) -> dict[str, Any]:
    """0.1.0 settings ({section: {key: value}}) in today's shape; today's settings unchanged."""
    model = values.get("model")
    legacy = "finetune" in values or (
        isinstance(model, dict) and "kind" not in model and model.get("name") in KINDS_0_1
    )
    if not legacy:
        return values
    values = dict(values)
    model = dict(values.get("model") or {})
    finetune = values.pop("finetune", None)
    kind = model.pop("name", "timm" if finetune is not None else "vit")
    if kind == "timm" and isinstance(finetune, dict):
        model = {("name" if key == "model" else key): value for key, value in finetune.items()}
    elif kind == "cnn":
        model = {key: value for key, value in model.items() if key == "dropout"}  # 0.1.0 wrote the ViT's too
    values["model"] = {"kind": kind, **model}
    return values


def upgrade_preprocessing(config: dict[str, Any], dataset: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing of a 0.1.0 checkpoint, from its config (already upgraded) and data set description
    (whose mean and std are popped): the data's normalisation, and for a timm model the resize to its
    image size and the gray-to-RGB repeat that 0.1.0 did inside the module."""
    preprocessing: dict[str, Any] = {"mean": dataset.pop("mean"), "std": dataset.pop("std")}
    model = config["model"]
    if model.get("kind") == "timm":
        preprocessing["size"] = [model["img_size"], model["img_size"]]
        if model.get("channels") == "repeat" and dataset["channels"] == 1:
            preprocessing["channels"] = 3
    return preprocessing
