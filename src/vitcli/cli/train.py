"""`vitcli train`: parse options into a Config, run it, print progress and the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vitcli.cli.common import console, user_errors
from vitcli.cli.progress import TrainProgress
from vitcli.config import Config, load_config
from vitcli.report import run_table
from vitcli.run import train_run

_DEFAULTS = Config()


def _default(section: str, key: str) -> str:
    value = getattr(getattr(_DEFAULTS, section), key)
    return "" if value is None else f" \\[default: {str(value).lower() if isinstance(value, bool) else value}]"


# Every option defaults to None, meaning "not given", so that a value from --config survives unless the
# option is given on the command line. The real defaults live in vitcli.config and are shown in --help.
def train(
    model: Optional[str] = typer.Option(None, "--model", help="vit or cnn." + _default("model", "name"), rich_help_panel="Model"),
    embed_dim: Optional[int] = typer.Option(None, help="Token width of the ViT." + _default("model", "embed_dim"), rich_help_panel="Model"),
    patch_size: Optional[int] = typer.Option(None, help="Patch side in pixels; must divide the image height and width." + _default("model", "patch_size"), rich_help_panel="Model"),
    depth: Optional[int] = typer.Option(None, help="Number of transformer blocks." + _default("model", "depth"), rich_help_panel="Model"),
    heads: Optional[int] = typer.Option(None, help="Attention heads; 1 uses single-head attention. Must divide --embed-dim." + _default("model", "heads"), rich_help_panel="Model"),
    mlp_dim: Optional[int] = typer.Option(None, help="Hidden size of each MLP. \\[default: 4 x embed-dim]", rich_help_panel="Model"),
    pos_embed: Optional[str] = typer.Option(None, help="learned or sinusoidal positional embedding." + _default("model", "pos_embed"), rich_help_panel="Model"),
    dropout: Optional[float] = typer.Option(None, help="Dropout rate in the ViT's blocks or the CNN's classifier." + _default("model", "dropout"), rich_help_panel="Model"),
    dataset: Optional[str] = typer.Option(None, help="mnist, fashion-mnist, cifar10, cifar100 or folder:PATH." + _default("data", "dataset"), rich_help_panel="Data"),
    data_dir: Optional[Path] = typer.Option(None, help="Where data sets are (or are downloaded to). \\[default: $VITCLI_DATA_DIR or ~/.cache/vitcli/data]", rich_help_panel="Data"),
    val_size: Optional[int] = typer.Option(None, help="Training images held out for validation; 0 trains on all. \\[default: 5000, a tenth for sets under 50k]", rich_help_panel="Data"),
    subset: Optional[int] = typer.Option(None, help="Train on only N training images, for quick tries.", rich_help_panel="Data"),
    augment: Optional[bool] = typer.Option(None, "--augment/--no-augment", help="Shifts for digits; crops with padding and flips for natural images. \\[default: augment]", rich_help_panel="Data"),
    epochs: Optional[int] = typer.Option(None, help="Passes over the training images." + _default("train", "epochs"), rich_help_panel="Training"),
    batch_size: Optional[int] = typer.Option(None, help="Images per step." + _default("train", "batch_size"), rich_help_panel="Training"),
    lr: Optional[float] = typer.Option(None, help="Peak AdamW learning rate (small ViTs like the default: ~1e-2; width 256: ~1e-3)." + _default("train", "lr"), rich_help_panel="Training"),
    weight_decay: Optional[float] = typer.Option(None, help="AdamW weight decay on weight matrices." + _default("train", "weight_decay"), rich_help_panel="Training"),
    warmup: Optional[float] = typer.Option(None, help="Epochs of linear warmup before the cosine decay." + _default("train", "warmup"), rich_help_panel="Training"),
    label_smoothing: Optional[float] = typer.Option(None, help="Label smoothing of the loss." + _default("train", "label_smoothing"), rich_help_panel="Training"),
    seed: Optional[int] = typer.Option(None, help="Seed for weights, order and augmentation." + _default("train", "seed"), rich_help_panel="Training"),
    device: Optional[str] = typer.Option(None, help="auto, cpu, cuda or cuda:N." + _default("train", "device"), rich_help_panel="Training"),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile", help="torch.compile the model (faster steps, slower start). \\[default: no-compile]", rich_help_panel="Training"),
    out: Optional[Path] = typer.Option(None, help="Folder for run directories." + _default("run", "out"), rich_help_panel="Output"),
    name: Optional[str] = typer.Option(None, help="Run directory name. \\[default: MODEL-DATASET-DATE-TIME]", rich_help_panel="Output"),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML file of settings; options given here override it.", rich_help_panel="Output"),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved config as TOML and exit.", rich_help_panel="Output"),
) -> None:
    """Train a ViT or the baseline CNN and save the best-validation model to a run directory."""
    overrides = {
        "model": dict(name=model, embed_dim=embed_dim, patch_size=patch_size, depth=depth, heads=heads,
                      mlp_dim=mlp_dim, pos_embed=pos_embed, dropout=dropout),
        "data": dict(dataset=dataset, data_dir=_str(data_dir), val_size=val_size, subset=subset, augment=augment),
        "train": dict(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, warmup=warmup,
                      label_smoothing=label_smoothing, seed=seed, device=device, compile=compile),
        "run": dict(out=_str(out), name=name),
    }
    with user_errors():
        cfg = load_config(config, overrides)
        if print_config:
            typer.echo(cfg.to_toml(), nl=False)
            return
        with TrainProgress(console) as listen:
            result = train_run(cfg, on_event=listen)
    console.print(run_table(result))
    console.print(f"saved [bold]{result.run_dir / 'model.safetensors'}[/]", highlight=False)


def _str(path: Path | None) -> str | None:
    return None if path is None else str(path)
