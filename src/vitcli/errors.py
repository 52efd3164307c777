"""Every error a user can fix, in one place. The CLI prints the message as one line and exits non-zero.

The kind says what went wrong and so what a sweep does with a failed run: a ConfigError (bad settings)
fails the same way every time and is not retried; an OutputError (a file that cannot be written), a
DataError, TrainingDiverged and OutOfMemory may pass on another try and are retried.

Anything else that escapes is a bug in vitcli and keeps its traceback.
"""

# The exit codes (README.md's "Errors"). 2 is Click's, for a usage error the parser finds.
EXIT_ERROR = 1  # a VitcliError: one line says what is wrong
EXIT_RANK_LOST = 3  # a process of a data-parallel run was lost (kill -9, a crash); its saved state stays
EXIT_STOPPED = 130  # Ctrl-C, SIGTERM or SIGHUP stopped a run (a shell's code for Ctrl-C)


class VitcliError(Exception):
    """A problem with the user's input, files or machine, worded as what is wrong and how to fix it."""

    exit_code = EXIT_ERROR


class ConfigError(VitcliError):
    """A bad option value, config file or combination of options (including a model that does not fit
    the data): the same settings always fail the same way."""


class DataError(VitcliError):
    """A data set that cannot be found, downloaded or read."""


class CheckpointError(VitcliError):
    """A checkpoint file that is missing, not safetensors, or not vitcli's."""


class WeightsError(VitcliError):
    """Pretrained weights that cannot be fetched or read, or that do not fit the model."""


class OutputError(VitcliError):
    """A run directory, results file or picture that cannot be created or written (permissions, a full
    disk, a path that is a file): the settings are fine, the place is not."""


class TrainingDiverged(VitcliError):
    """The training loss became NaN or infinite."""


class OutOfMemory(VitcliError):
    """The GPU ran out of memory; the state of the last finished epoch stays on disk."""


class RankLost(VitcliError):
    """A process of a data-parallel run is gone (killed, crashed, or ended by an error of its own) while
    the others needed it; they cannot go on without it. The state of the last finished epoch stays on
    disk. An exit code of its own, so that a script can tell it from bad input and resume."""

    exit_code = EXIT_RANK_LOST


def one_line(error: BaseException) -> str:
    """An error's message on one line, for the reason in a message of ours. torchvision's download error
    is "Error downloading X:" with the causes on the lines after it: its first line alone ends in an
    empty cause."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    return " ".join(lines[:3]) if lines[0].endswith(":") else lines[0]
