"""`vitcli train`: parse options into a Config, run it, print progress and the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vitcli.cli.common import console, print_note, user_errors
from vitcli.cli.options import ConfigFile, Nproc, Overwrite, PresetName, PrintConfig, Resume, given_settings
from vitcli.errors import ConfigError
from vitcli.runtime.launch import check_nproc, launch, without_nproc
from vitcli.runtime.ranks import Ranks, check_batch
from vitcli.settings.config import Config, load_config


# The model, data, training and output options come from the settings' fields (cli/options.py, added by
# the command's class where it is registered: cli/__init__.py); these are the command's own.
def train(
    ctx: typer.Context,
    nproc: Nproc = None,
    preset: PresetName = None,
    config: ConfigFile = None,
    print_config: PrintConfig = False,
    resume: Resume = None,
    overwrite: Overwrite = False,
) -> None:
    """Train a ViT or the baseline CNN and save the best-validation model to a run directory.

    Options of the other model kind (--heads for the CNN) are left out with a note.
    """
    train_and_print(
        config,
        given_settings(ctx, "train"),
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
    # The core (torch), the progress bar and the tables load when the command runs, so that --help and
    # completion start at once.
    from vitcli.cli.progress import TrainProgress
    from vitcli.training.run import resume_run, train_run

    with user_errors(interrupted="stopped at once; the state of the last finished epoch is kept"):
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
        init = overrides.get("model", {}).get("init")
        if init is not None and defaults is None:
            # Model settings not given are the --init checkpoint's own (a preset's or --config's still win).
            from vitcli.training.transfer import model_of

            defaults = Config(model=model_of(init))
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
    """This command line in `nproc` processes (vitcli.runtime.launch); their exit code is this one's."""

    code = launch(nproc, [ctx.info_name, *without_nproc(ctx.meta["args"])])
    if code:
        raise typer.Exit(code)


def print_result(result) -> None:
    from vitcli.cli.tables import run_table

    console.print(run_table(result))
    console.print(f"saved [bold]{result.run_dir / 'model.safetensors'}[/]", highlight=False)
