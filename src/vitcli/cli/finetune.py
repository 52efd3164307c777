"""`vitcli finetune`: parse options into a Config with a [finetune] section, run it, print the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vitcli.cli.common import console, user_errors
from vitcli.cli.progress import TrainProgress
from vitcli.config import finetune_defaults, load_config
from vitcli.report import run_table
from vitcli.run import train_run

_DEFAULTS = finetune_defaults()
_HELP_MODEL = "Model (timm)"


def _default(section: str, key: str) -> str:
    value = getattr(getattr(_DEFAULTS, section), key)
    return "" if value is None else f" \\[default: {str(value).lower() if isinstance(value, bool) else value}]"


# As in `train`, every option defaults to None ("not given") so that a --config file's value survives;
# the defaults live in vitcli.config.finetune_defaults.
def finetune(
    pretrained: Optional[str] = typer.Option(
        None, help="none, imagenet (timm tag vit_small_patch16_224.augreg_in21k_ft_in1k: ImageNet-21k, fine-tuned "
        "on ImageNet-1k), dino (vit_small_patch16_224.dino, self-supervised) or a local .safetensors/.pth/.bin "
        "state dict in timm's key names. imagenet and dino come through timm from the Hugging Face hub or its "
        "cache (HF_HUB_OFFLINE=1 works with a filled cache)." + _default("finetune", "pretrained"),
        rich_help_panel=_HELP_MODEL),
    model: Optional[str] = typer.Option(None, "--model", help="A timm ViT (vit_*, deit_*); imagenet/dino map to its own tags." + _default("finetune", "model"), rich_help_panel=_HELP_MODEL),
    img_size: Optional[int] = typer.Option(
        None, help="Side the images are resized to on the device; the position table is resampled to match. "
        "The default, the pretrained resolution, is the accurate choice but slow: hours per MNIST epoch on a CPU. "
        "For small images on a CPU use --img-size 28 --patch-size 4. \\[default: the model's, 224]", rich_help_panel=_HELP_MODEL),
    patch_size: Optional[int] = typer.Option(None, help="Patch side; another than the model's resamples the patch embedding. \\[default: the model's, 16]", rich_help_panel=_HELP_MODEL),
    channels: Optional[str] = typer.Option(None, help="Gray data: adapt (sum the input conv's RGB weights into one channel) or repeat (copy gray to RGB)." + _default("finetune", "channels"), rich_help_panel=_HELP_MODEL),
    adapt: Optional[bool] = typer.Option(None, "--adapt/--no-adapt", help="--no-adapt: the model exactly as pretrained; data of another shape is refused with the reason. \\[default: adapt]", rich_help_panel=_HELP_MODEL),
    freeze: Optional[str] = typer.Option(None, help="none (full fine-tune), backbone (linear probe: only the head trains) or N (freeze patch embedding, positions and the first N blocks)." + _default("finetune", "freeze"), rich_help_panel=_HELP_MODEL),
    layer_decay: Optional[float] = typer.Option(None, help="Layer-wise lr decay, e.g. 0.75: each block learns at 0.75 x the rate of the one above. \\[default: off]", rich_help_panel=_HELP_MODEL),
    dataset: Optional[str] = typer.Option(None, help="mnist, fashion-mnist, cifar10, cifar100 or folder:PATH." + _default("data", "dataset"), rich_help_panel="Data"),
    data_dir: Optional[Path] = typer.Option(None, help="Where data sets are (or are downloaded to). \\[default: $VITCLI_DATA_DIR or ~/.cache/vitcli/data]", rich_help_panel="Data"),
    val_size: Optional[int] = typer.Option(None, help="Training images held out for validation; 0 trains on all. \\[default: 5000, a tenth for sets under 50k]", rich_help_panel="Data"),
    subset: Optional[int] = typer.Option(None, help="Train on only N training images, for quick tries.", rich_help_panel="Data"),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Shifts for digits; crops with padding and flips for natural images. \\[default: augment]", rich_help_panel="Data"),
    epochs: Optional[int] = typer.Option(None, help="Passes over the training images." + _default("train", "epochs"), rich_help_panel="Training"),
    batch_size: Optional[int] = typer.Option(None, help="Images per step." + _default("train", "batch_size"), rich_help_panel="Training"),
    lr: Optional[float] = typer.Option(None, help="Peak AdamW learning rate. 1e-4 suits pretrained weights at batch 128 (DeiT's 5e-4 x batch/512); larger rates undo what they learned." + _default("train", "lr"), rich_help_panel="Training"),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay on weight matrices." + _default("train", "weight_decay"), rich_help_panel="Training"),
    warmup: Optional[float] = typer.Option(None, help="Epochs of linear warmup before the cosine decay." + _default("train", "warmup"), rich_help_panel="Training"),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing of the loss." + _default("train", "label_smoothing"), rich_help_panel="Training"),
    seed: Optional[int] = typer.Option(None, help="Seed for the new weights, order and augmentation." + _default("train", "seed"), rich_help_panel="Training"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or cuda:N." + _default("train", "device"), rich_help_panel="Training"),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (faster steps, slower start). \\[default: no-compile]", rich_help_panel="Training"),
    out: Optional[Path] = typer.Option(None, help="Folder for run directories." + _default("run", "out"), rich_help_panel="Output"),
    name: Optional[str] = typer.Option(None, help="Run directory name. \\[default: timm-DATASET-DATE-TIME]", rich_help_panel="Output"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of settings; options given here override it.", rich_help_panel="Output"),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as TOML and exit.", rich_help_panel="Output"),
) -> None:
    """Fine-tune a timm ViT (default ViT-S/16), pretrained or not, adapted to small or gray images.

    The image size, patch grid, channels and classes are adapted with timm's own functions; the summary
    shows each adaptation.
    """
    overrides = {
        "model": dict(name="timm"),
        "finetune": dict(model=model, pretrained=pretrained, img_size=img_size, patch_size=patch_size,
                         channels=channels, adapt=adapt, freeze=freeze, layer_decay=layer_decay),
        "data": dict(dataset=dataset, data_dir=_str(data_dir), val_size=val_size, subset=subset, augment=augment),
        "train": dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup,
                      label_smoothing=label_smoothing, seed=seed, device=device, compile=compile),
        "run": dict(out=_str(out), name=name),
    }
    with user_errors():
        cfg = load_config(config, overrides, defaults=finetune_defaults())
        if print_config:
            typer.echo(cfg.to_toml(), nl=False)
            return
        with TrainProgress(console) as listen:
            result = train_run(cfg, on_event=listen)
    console.print(run_table(result))
    console.print(f"saved [bold]{result.run_dir / 'model.safetensors'}[/]", highlight=False)


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
