"""`vitcli finetune`: parse options into a Config whose [model] is a timm spec, run it, print the summary."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from vitcli.cli.choices import Channels, plain
from vitcli.cli.options import (
    OUTPUT,
    TRAINING,
    Augment,
    BatchSize,
    ClipGrad,
    Compile,
    ConfigFile,
    Cutmix,
    DataDir,
    Dataset,
    Device,
    DropPath,
    Ema,
    Epochs,
    Erase,
    LabelSmoothing,
    MixOffEpochs,
    Mixup,
    Nproc,
    Out,
    Overwrite,
    PrintConfig,
    RandAugment,
    Resume,
    SnapshotAttention,
    Subset,
    TensorBoard,
    ValSize,
    Warmup,
    WeightDecay,
    default_help,
    shared_overrides,
)
from vitcli.cli.train import train_and_print
from vitcli.config import finetune_defaults

_DEFAULTS = finetune_defaults()
_MODEL = "Model (timm)"


def _default(section: str, key: str) -> str:
    return default_help(_DEFAULTS, section, key)


# As in `train`, each option defaults to None ("not given"; see cli/options.py), and the data, training
# and output options are train's; the defaults live in vitcli.config.finetune_defaults.
def finetune(
    ctx: typer.Context,
    pretrained: Annotated[
        Optional[str],
        typer.Option(
            help="none, imagenet (timm tag vit_small_patch16_224.augreg_in21k_ft_in1k: ImageNet-21k, "
            "fine-tuned on ImageNet-1k), dino (vit_small_patch16_224.dino, self-supervised) or a local "
            ".safetensors/.pth/.bin state dict in timm's key names. imagenet and dino come through timm "
            "from the Hugging Face hub or its cache (HF_HUB_OFFLINE=1 works with a filled cache)."
            + _default("model", "pretrained"),
            rich_help_panel=_MODEL,
        ),
    ] = None,
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            help="A timm ViT (vit_*, deit_*); imagenet/dino map to its own tags." + _default("model", "name"),
            rich_help_panel=_MODEL,
        ),
    ] = None,
    img_size: Annotated[
        Optional[int],
        typer.Option(
            help="Side the images are resized to on the device; the position table is resampled to match. "
            "The default, the pretrained resolution, is the accurate choice but slow: hours per MNIST "
            "epoch on a CPU. For small images on a CPU use --img-size 28 --patch-size 4. "
            "\\[default: the model's, 224]",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    patch_size: Annotated[
        Optional[int],
        typer.Option(
            help="Patch side; another than the model's resamples the patch embedding. "
            "\\[default: the model's, 16]",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    channels: Annotated[
        Optional[Channels],
        typer.Option(
            help="Gray data: adapt (sum the input conv's RGB weights into one channel) "
            "or repeat (copy gray to RGB)." + _default("model", "channels"),
            rich_help_panel=_MODEL,
        ),
    ] = None,
    adapt: Annotated[
        Optional[bool],
        typer.Option(
            "--adapt/--no-adapt",
            help="--no-adapt: the model exactly as pretrained; data of another shape is refused "
            "with the reason. \\[default: adapt]",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    freeze: Annotated[
        Optional[str],
        typer.Option(
            help="none (full fine-tune), backbone (linear probe: only the head trains) or N "
            "(freeze patch embedding, positions and the first N blocks)." + _default("model", "freeze"),
            rich_help_panel=_MODEL,
        ),
    ] = None,
    layer_decay: Annotated[
        Optional[float],
        typer.Option(
            help="Layer-wise lr decay, e.g. 0.75: each block learns at 0.75 x the rate of the one above. "
            "\\[default: off]",
            rich_help_panel=_MODEL,
        ),
    ] = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    val_size: ValSize = None,
    subset: Subset = None,
    augment: Augment = None,
    randaugment: RandAugment = None,
    erase: Erase = None,
    mixup: Mixup = None,
    cutmix: Cutmix = None,
    mix_off_epochs: MixOffEpochs = None,
    epochs: Epochs = None,
    batch_size: BatchSize = None,
    lr: Annotated[
        Optional[float],
        typer.Option(
            help="Peak AdamW learning rate. 1e-4 suits pretrained weights at batch 128 "
            "(DeiT's 5e-4 x batch/512); larger rates undo what they learned." + _default("train", "lr"),
            rich_help_panel=TRAINING,
        ),
    ] = None,
    weight_decay: WeightDecay = None,
    warmup: Warmup = None,
    label_smoothing: LabelSmoothing = None,
    seed: Annotated[
        Optional[int],
        typer.Option(
            help="Seed for the new weights, order and augmentation." + _default("train", "seed"),
            rich_help_panel=TRAINING,
        ),
    ] = None,
    device: Device = None,
    compile: Compile = None,
    drop_path: DropPath = None,
    ema: Ema = None,
    clip_grad: ClipGrad = None,
    snapshot_attention: SnapshotAttention = None,
    tensorboard: TensorBoard = None,
    nproc: Nproc = None,
    out: Out = None,
    name: Annotated[
        Optional[str],
        typer.Option(help="Run directory name. \\[default: timm-DATASET-DATE-TIME]", rich_help_panel=OUTPUT),
    ] = None,
    config: ConfigFile = None,
    print_config: PrintConfig = False,
    resume: Resume = None,
    overwrite: Overwrite = False,
) -> None:
    """Fine-tune a timm ViT (default ViT-S/16), pretrained or not, adapted to small or gray images.

    The image size, patch grid, channels and classes are adapted with timm's own functions; the summary
    shows each adaptation.
    """
    overrides = {
        "model": {
            "kind": "timm",
            "name": model,
            "pretrained": pretrained,
            "img_size": img_size,
            "patch_size": patch_size,
            "channels": plain(channels),
            "adapt": adapt,
            "freeze": freeze,
            "layer_decay": layer_decay,
        },
        **shared_overrides(locals()),
    }
    train_and_print(
        config, overrides, print_config, finetune_defaults(), resume, overwrite, nproc=nproc, ctx=ctx
    )
