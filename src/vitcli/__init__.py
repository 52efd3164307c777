"""vitcli: a command-line lab for Vision Transformers and CNNs on small images.

The core is plain Python; the Typer app in `vitcli.cli` only parses and prints:

    from vitcli.config import Config
    from vitcli.run import train_run
    result = train_run(Config())
"""

__version__ = "0.1.0"
