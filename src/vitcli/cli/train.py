"""`vitcli train`: parse options into a Config, run it, print progress and the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vitcli.cli.choices import Pool, PosEmbed, Tokenizer, TrainModel, plain
from vitcli.cli.common import console, print_note, user_errors
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
    PresetName,
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
from vitcli.cli.progress import TrainProgress
from vitcli.config import Config, load_config
from vitcli.distributed import Ranks, check_batch
from vitcli.errors import ConfigError
from vitcli.fields import field_names
from vitcli.launch import check_nproc, launch, without_nproc
from vitcli.models.specs import CNNSpec, ViTSpec
from vitcli.report import run_table
from vitcli.run import resume_run, train_run

_DEFAULTS = Config()
# train's options for the [model] section besides --model (the kind): the ViT's, and the CNN's dropout.
MODEL_OPTIONS = tuple(dict.fromkeys(field_names(ViTSpec) + field_names(CNNSpec)))
_MODEL, _VARIANTS = "Model", "ViTs for small data (docs/small-data.md)"


def _default(section: str, key: str) -> str:
    return default_help(_DEFAULTS, section, key)


# Each option defaults to None ("not given"; see cli/options.py). `vitcli sweep` copies these parameters.
def train(
    ctx: typer.Context,
    model: Annotated[
        Optional[TrainModel],
        typer.Option(
            "--model", help="The in-house ViT or the baseline CNN. \\[default: vit]", rich_help_panel=_MODEL
        ),
    ] = None,
    embed_dim: Annotated[
        Optional[int],
        typer.Option(help="Token width of the ViT." + _default("model", "embed_dim"), rich_help_panel=_MODEL),
    ] = None,
    patch_size: Annotated[
        Optional[int],
        typer.Option(
            help="Patch side in pixels; must divide the image height and width (--tokenizer conv has none)."
            + _default("model", "patch_size"),
            rich_help_panel=_MODEL,
        ),
    ] = None,
    depth: Annotated[
        Optional[int],
        typer.Option(
            help="Number of transformer blocks." + _default("model", "depth"), rich_help_panel=_MODEL
        ),
    ] = None,
    heads: Annotated[
        Optional[int],
        typer.Option(
            help="Attention heads; 1 uses single-head attention. Must divide --embed-dim."
            + _default("model", "heads"),
            rich_help_panel=_MODEL,
        ),
    ] = None,
    mlp_dim: Annotated[
        Optional[int],
        typer.Option(help="Hidden size of each MLP. \\[default: 4 x embed-dim]", rich_help_panel=_MODEL),
    ] = None,
    pos_embed: Annotated[
        Optional[PosEmbed],
        typer.Option(
            help="Positional embedding of the ViT (none: no positions)." + _default("model", "pos_embed"),
            rich_help_panel=_MODEL,
        ),
    ] = None,
    dropout: Annotated[
        Optional[float],
        typer.Option(
            help="Dropout rate in the ViT's blocks or the CNN's classifier." + _default("model", "dropout"),
            rich_help_panel=_MODEL,
        ),
    ] = None,
    tokenizer: Annotated[
        Optional[Tokenizer],
        typer.Option(
            help="patch; spt: shifted patch tokenization (Lee et al.); conv: a convolutional stem (CCT)."
            + _default("model", "tokenizer"),
            rich_help_panel=_VARIANTS,
        ),
    ] = None,
    conv_layers: Annotated[
        Optional[int],
        typer.Option(
            help="Conv, ReLU, max-pool stages of --tokenizer conv; each halves the token grid."
            + _default("model", "conv_layers"),
            rich_help_panel=_VARIANTS,
        ),
    ] = None,
    lsa: Annotated[
        Optional[bool],
        typer.Option(
            "--lsa/--no-lsa",
            help="Locality self-attention: a learned softmax temperature, each token's own key masked. "
            "\\[default: no-lsa]",
            rich_help_panel=_VARIANTS,
        ),
    ] = None,
    pool: Annotated[
        Optional[Pool],
        typer.Option(
            help="What the head reads: the [CLS] token, the mean token (gap), or CCT's sequence pooling."
            + _default("model", "pool"),
            rich_help_panel=_VARIANTS,
        ),
    ] = None,
    teacher: Annotated[
        Optional[Path],
        typer.Option(
            help="A checkpoint with the same classes (e.g. the CNN's) to distil from, DeiT-style, through "
            "a distillation token.",
            rich_help_panel=_VARIANTS,
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
            help="Peak AdamW learning rate (small ViTs like the default: ~1e-2; width 256: ~1e-3)."
            + _default("train", "lr"),
            rich_help_panel=TRAINING,
        ),
    ] = None,
    weight_decay: WeightDecay = None,
    warmup: Warmup = None,
    label_smoothing: LabelSmoothing = None,
    seed: Annotated[
        Optional[int],
        typer.Option(
            help="Seed for weights, order and augmentation." + _default("train", "seed"),
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
        typer.Option(help="Run directory name. \\[default: MODEL-DATASET-DATE-TIME]", rich_help_panel=OUTPUT),
    ] = None,
    preset: PresetName = None,
    config: ConfigFile = None,
    print_config: PrintConfig = False,
    resume: Resume = None,
    overwrite: Overwrite = False,
) -> None:
    """Train a ViT or the baseline CNN and save the best-validation model to a run directory.

    Options of the other model kind (--heads for the CNN) are left out with a note.
    """
    given = locals()
    overrides = {
        "model": {"kind": plain(model), **{key: plain(given[key]) for key in MODEL_OPTIONS}},
        **shared_overrides(given),
    }
    train_and_print(
        config,
        overrides,
        print_config,
        resume=resume,
        overwrite=overwrite,
        preset=preset,
        nproc=nproc,
        ctx=ctx,
    )


def train_and_print(
    config: Path | None,
    overrides: dict[str, dict[str, Any]],
    print_config: bool,
    defaults: Config | None = None,
    resume: Path | None = None,
    overwrite: bool = False,
    preset: str | None = None,
    nproc: int | None = None,
    ctx: typer.Context | None = None,
) -> None:
    """What train and finetune do once their options are a config: print it, or train (or resume a run)
    and summarise; with --nproc N, start the same command in N processes."""
    with user_errors():
        if nproc is not None:
            check_nproc(nproc)
        if resume is not None:
            if config is not None or overwrite or preset is not None:
                raise ConfigError(
                    "--resume goes on with a run's own settings; leave out --config, --preset and --overwrite"
                )
            if nproc is not None and nproc > 1:
                return _launch(nproc, ctx)
            with TrainProgress(console) as listen:
                result = resume_run(resume, overrides, on_event=listen)
            return print_result(result)
        cfg = load_config(config, overrides, defaults=defaults, preset=preset)
        if print_config:
            for note in cfg.notes:  # on stderr, so that stdout stays a TOML file
                print_note(note)
            typer.echo(cfg.validate().to_toml(), nl=False)
            return
        if nproc is not None and nproc > 1:
            check_batch(cfg.validate().train.batch_size, Ranks(world=nproc))
            return _launch(nproc, ctx)
        # A --name given here is the run's name; one that came with --config is a default (a taken one gets
        # a suffix), so that `--config RUN/config.toml` repeats a run without touching it.
        exact = overrides["run"]["name"] is not None
        with TrainProgress(console) as listen:
            result = train_run(cfg, on_event=listen, exact_name=exact, overwrite=overwrite)
    print_result(result)


def _launch(nproc: int, ctx: typer.Context) -> None:
    """This command line in `nproc` processes (vitcli.launch); their exit code is this one's."""
    code = launch(nproc, [ctx.info_name, *without_nproc(ctx.meta["args"])])
    if code:
        raise typer.Exit(code)


def print_result(result) -> None:
    console.print(run_table(result))
    console.print(f"saved [bold]{result.run_dir / 'model.safetensors'}[/]", highlight=False)
