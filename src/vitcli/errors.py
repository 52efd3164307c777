"""Errors a user can fix. The CLI prints their message as one line and exits non-zero.

Anything else that escapes is a bug in vitcli and keeps its traceback.
"""


class VitcliError(Exception):
    """A problem with the user's input, files or machine, worded as what is wrong and how to fix it."""


class ConfigError(VitcliError):
    """A bad option value, config file or combination of options."""


class DataError(VitcliError):
    """A data set that cannot be found, downloaded or read."""


class CheckpointError(VitcliError):
    """A checkpoint file that is missing, not safetensors, or not vitcli's."""


class WeightsError(VitcliError):
    """Pretrained weights that cannot be fetched or read, or that do not fit the model."""
