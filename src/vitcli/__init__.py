"""vitcli: a command-line lab for Vision Transformers and CNNs on small images.

The core is plain Python; the command line (`vitcli.cli`) only parses and prints. The short API:

    import vitcli

    result = vitcli.train(model={"kind": "vit", "embed_dim": 64}, train={"epochs": 3})
    print(result.test.accuracy, result.run_dir)
    report = vitcli.evaluate(result.run_dir)           # the checkpoint on its test split
    checkpoint = vitcli.load(result.run_dir)           # the model, its config, data and preprocessing

Each name is imported when first used, so `import vitcli` costs nothing (torch loads with the first call).
"""

from __future__ import annotations

from vitcli.runtime.version import __version__

__all__ = ["__version__", "train", "resume", "evaluate", "load", "load_config"]


def train(config=None, *, on_event=None, overwrite: bool = False, **sections):
    """Train one run and return its RunResult (`vitcli.training.run`). `config` is a Config, the path of a
    TOML file or None (the defaults); `sections` override it, as `model={"embed_dim": 64}`."""
    from vitcli.settings.config import Config, load_config
    from vitcli.training.run import train_run

    if not isinstance(config, Config):
        config = load_config(config, sections)
    elif sections:
        config = config.merged(sections)
    return train_run(config, on_event=on_event, overwrite=overwrite)


def resume(run_dir, *, on_event=None, **sections):
    """Go on with the interrupted run in `run_dir` from its last state; `sections` may raise the epochs."""
    from vitcli.training.run import resume_run

    return resume_run(run_dir, sections, on_event=on_event)


def evaluate(checkpoint, **options):
    """Score a checkpoint (or a run directory) on a split of its data: an EvalReport (`lab/evaluate.py`)."""
    from vitcli.lab.evaluate import eval_checkpoint

    return eval_checkpoint(checkpoint, **options)


def load(checkpoint, device: str = "cpu"):
    """A checkpoint's model, config, data description and preprocessing (`vitcli.training.checkpoint`)."""
    from vitcli.training.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint, device)


def load_config(path=None, overrides=None, preset: str | None = None):
    """Settings from defaults, a preset, a TOML file and overrides (`vitcli.settings.config`)."""
    from vitcli.settings.config import load_config as load

    return load(path, overrides, preset=preset)
