"""Which weights a run keeps: those of its best validation epoch, raw or averaged.

With `--ema DECAY` the engine keeps an exponential moving average of the weights beside the weights it
trains, updated after every optimiser step (ema = decay * ema + (1 - decay) * weights, Polyak averaging
as in DeiT). Both are measured on the validation split after every epoch, and `BestWeights` keeps
whichever of all those measurements was best, and says which ("raw" or "ema").
"""

from __future__ import annotations

from torch import Tensor, nn

from vitcli.training.evaluation import EvalResult

RAW, EMA = "raw", "ema"


def moving_average(model: nn.Module, decay: float):
    """timm's ModelEmaV3 of `model`: `.update(model)` after a step, `.module` the averaged copy (in eval
    mode, on the model's device). Without warmup, so that one update is exactly the formula above."""
    from timm.utils.model_ema import ModelEmaV3  # timm is slow to import; runs without EMA skip it

    return ModelEmaV3(model, decay=decay)


def copy_state(module: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class BestWeights:
    """The weights of the best validation measurement so far: highest accuracy, then lowest loss; the raw
    weights win a tie with their average."""

    def __init__(self, last_epoch: int, source: str = RAW):
        self.score: tuple[float, float] | None = None
        self.state: dict[str, Tensor] | None = None
        self.epoch = last_epoch  # with no validation split, the last epoch is the one kept
        self.source = source  # ... and its average, when there is one

    def offer(self, epoch: int, candidates: list[tuple[str, nn.Module, EvalResult | None]]) -> bool:
        """Keep the weights of whichever (source, module, validation result) beats the best so far;
        whether one did."""
        improved = False
        for source, module, val in candidates:
            if val is not None and (self.score is None or (val.accuracy, -val.loss) > self.score):
                self.score, self.epoch, self.source = (val.accuracy, -val.loss), epoch, source
                self.state = copy_state(module)
                improved = True
        return improved

    def restore(self, model: nn.Module) -> None:
        """Put the kept weights into `model` (nothing to do without a validation split and an average)."""
        if self.state is not None:
            model.load_state_dict(self.state)
