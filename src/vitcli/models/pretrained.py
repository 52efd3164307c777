"""Pretrained weights for timm ViTs: where they come from, and how they are adapted to other images.

`--pretrained imagenet|dino` names a timm pretrained tag, fetched by timm as it always does (the Hugging
Face hub, its cache, HF_HUB_OFFLINE); `--pretrained FILE` reads a local state dict in timm's key names.

The adaptation runs the functions timm's `load_pretrained` runs, in the same order: the model module's
`checkpoint_filter_fn` (which calls `resample_patch_embed` and `resample_abs_pos_embed`), then
`adapt_input_conv`, then the classifier is dropped. We call them one by one instead of
`timm.create_model(pretrained=True, pretrained_cfg_overlay=dict(file=...))` for two reasons: that path
loads with strict=False as soon as the head changes, so a file of another model would leave random
weights without a word; and it reports what it changed only in log lines. Here every tensor the model
has (but the head) must come from the weights, and each change is recorded for the summary table and
the checkpoint. A test holds the result equal to timm's own path.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from vitcli.data.datasets import DatasetInfo
from vitcli.errors import ConfigError, WeightsError
from vitcli.models.timm_vit import Native, TimmViT, checkpoint_filter, classifier_names
from vitcli.settings.specs import TimmSpec

SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
PATCH_WEIGHT = "patch_embed.proj.weight"


@dataclass
class Weights:
    label: str  # the timm tag, the file's name, or "none"
    source: str  # "timm" | "file" | "none"
    state: dict[str, Tensor] | None  # in timm's key names as published; None: random initialisation
    mean: tuple[float, ...] | None  # the normalisation the weights were trained with; None: the data's
    std: tuple[float, ...] | None


def hub_tag(model: str, pretrained: str) -> str:
    """The timm pretrained tag `imagenet` or `dino` means for `model`: for vit_small_patch16_224,
    vit_small_patch16_224.augreg_in21k_ft_in1k (timm's default: ImageNet-21k, fine-tuned on ImageNet-1k)
    and vit_small_patch16_224.dino (self-supervised DINO, no classifier)."""
    # timm is heavy and needed only for timm models, their weights and exports
    import timm
    from timm.models import get_pretrained_cfg

    tags = [name.split(".", 1)[1] for name in timm.list_pretrained(f"{model}.*")]
    if pretrained == "dino":
        wanted = [t for t in tags if t == "dino"]
    else:
        # timm's default tag when it is ImageNet-1k classification weights, else the first that is.
        default = get_pretrained_cfg(model).tag if tags else None
        wanted = (
            [default] if default and default.endswith("in1k") else [t for t in tags if t.endswith("in1k")]
        )
    if not wanted:
        have = ", ".join(tags) or "none"
        raise ConfigError(
            f"timm has no {pretrained} weights for {model} (its pretrained tags: {have}); "
            "pass a local state dict with --pretrained FILE, or --pretrained none"
        )
    return f"{model}.{wanted[0]}"


def fetch(cfg: TimmSpec, on_status: Callable[[str], None] | None = None) -> Weights:
    """The weights `cfg.pretrained` names, read or downloaded; a one-line error when they cannot be.
    `on_status` gets a line before weights are downloaded from the hub (their size, where from)."""
    # timm is heavy and needed only for timm models, their weights and exports
    from timm.models import get_pretrained_cfg

    if cfg.pretrained == "none":
        return Weights("none", "none", None, None, None)
    if cfg.pretrained in ("imagenet", "dino"):
        tag = hub_tag(cfg.name, cfg.pretrained)
        pretrained_cfg = get_pretrained_cfg(tag)
        return Weights(tag, "timm", _download(tag, on_status), pretrained_cfg.mean, pretrained_cfg.std)
    # A file carries no normalisation; the model's default pretrained weights' is the best guess.
    default = get_pretrained_cfg(cfg.name)
    mean, std = (default.mean, default.std) if default else (None, None)
    return Weights(Path(cfg.pretrained).name, "file", read_state_dict(cfg.pretrained), mean, std)


def _download(tag: str, on_status: Callable[[str], None] | None = None) -> dict[str, Tensor]:
    # timm is heavy and needed only for timm models, their weights and exports
    import timm

    size = _check_hub(tag)
    if size is not None and on_status is not None:
        on_status(f"downloading {tag} weights ({size / 1e6:.1f} MB) from the Hugging Face hub")
    # Without a network the hub retries each file for about half a minute and logs a warning per try;
    # the one line below says what matters, so its retry warnings are held back.
    hub_logger = logging.getLogger("huggingface_hub")
    level = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    try:
        # The model as published (224x224 RGB, its own head): timm resolves the hub, its cache,
        # HF_HUB_OFFLINE and custom formats exactly as for any timm user.
        return timm.create_model(tag, pretrained=True).state_dict()
    except Exception as e:  # noqa: BLE001 - no network, no cache, a proxy: all mean "could not fetch"
        raise _fetch_error(tag, e) from None
    finally:
        hub_logger.setLevel(level)


def _fetch_error(tag: str, e: Exception, detail: str = "") -> WeightsError:
    first = (str(e).strip().splitlines() or [""])[0].split(". ")[0]  # hub errors run to paragraphs
    reason = f"{type(e).__name__}: {first[:150]}" if first else type(e).__name__
    return WeightsError(
        f"could not fetch timm's {tag} weights ({reason}{detail}); without internet pass a local state dict "
        f"of {tag.split('.')[0]} with --pretrained FILE (.safetensors, .pth or .bin), or fill the "
        "Hugging Face cache on a connected machine and set HF_HUB_OFFLINE=1"
    )


def _check_hub(tag: str) -> int | None:
    """The size in bytes of the file timm will download for `tag`; None when nothing is to be downloaded
    (the file is in the hub's cache, HF_HUB_OFFLINE is set, the weights are not on the hub) or the hub
    did not give a size. A WeightsError when the hub cannot be reached.

    Without this check an unreachable hub costs about 50 s: huggingface_hub retries each file five
    times with backoff (2+4+8+8 s) and timm asks for two files, and no setting of huggingface_hub
    shortens the retries. One HEAD request without retries, through huggingface_hub's own client (its
    endpoint, proxies and token), answers within HF_HUB_ETAG_TIMEOUT (3 s unless set): at once when
    the name does not resolve or the connection is refused, about 5 s where packets are dropped (the
    hub's client first fetches its user-agent registry, with a 3 s timeout of its own). A file already
    in the cache needs no check: huggingface_hub then falls back to it at once when the hub is down."""
    # timm's hub client, needed only for pretrained weights
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.utils import EntryNotFoundError, HfHubHTTPError
    from timm.models import get_pretrained_cfg

    pretrained_cfg = get_pretrained_cfg(tag)
    hub_id = pretrained_cfg.hf_hub_id if pretrained_cfg else None
    if constants.HF_HUB_OFFLINE or not hub_id or pretrained_cfg.file or pretrained_cfg.state_dict:
        return None
    repo, _, revision = hub_id.partition("@")
    # The files timm's load_state_dict_from_hf asks for, in its order.
    names = ["model.safetensors", "pytorch_model.bin"]
    if pretrained_cfg.hf_hub_filename:
        names = [pretrained_cfg.hf_hub_filename]
    if any(isinstance(try_to_load_from_cache(repo, n, revision=revision or None), str) for n in names):
        return None
    timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or 3)
    for name in names:
        url = hf_hub_url(repo, name, revision=revision or None)
        try:
            return get_hf_file_metadata(url, timeout=timeout).size
        except EntryNotFoundError:
            continue  # timm tries the next file
        except HfHubHTTPError:
            return None  # the hub answered (a gated or moved repository): timm's own error will say
        except Exception as e:  # noqa: BLE001 - no DNS, refused, timed out, a proxy: the hub is not there
            detail = f"; the hub at {constants.ENDPOINT} cannot be reached"
            if "timeout" in type(e).__name__.lower():  # slow rather than absent: say how to wait longer
                detail = (
                    f"; the hub at {constants.ENDPOINT} did not answer in {timeout:g} s (HF_HUB_ETAG_TIMEOUT)"
                )
            raise _fetch_error(tag, e, detail) from None
    return None


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state dict from a .safetensors file, or a .pth/.bin file read with weights_only=True (no
    arbitrary unpickling); one nested under "state_dict" or "model" and DDP's "module." prefix are fine."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsError(
            f"--pretrained {path}: no such file; use none, imagenet, dino or a {', '.join(SUFFIXES)} "
            "state dict"
        )
    if path.suffix.lower() not in SUFFIXES:
        raise WeightsError(f"--pretrained {path}: not a {', '.join(SUFFIXES)} file")
    try:
        if path.suffix.lower() == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - a damaged file fails in many ways; each is the same to the user
        if isinstance(e, pickle.UnpicklingError) and "unsupported global" in str(e).lower():
            raise WeightsError(
                f"--pretrained {path} holds Python objects besides tensors, and vitcli reads .pth/.bin "
                "files with weights_only=True; save just the weights: torch.save(model.state_dict(), PATH)"
            ) from None
        raise WeightsError(
            f"--pretrained {path} cannot be read ({type(e).__name__}); is it a complete weights file?"
        ) from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsError(f"--pretrained {path} is not a state dict (a dict of parameter names to tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load(vit: TimmViT, weights: Weights, where: str) -> None:
    """Adapt `weights` to `vit` with timm's functions and load them; every tensor but the head must fit."""
    model = vit.model
    expected = model.state_dict()
    try:
        state = checkpoint_filter(model)(dict(weights.state), model)
        conv = state.get(PATCH_WEIGHT)
        if conv is not None and conv.ndim == 4 and conv.shape[1] != expected[PATCH_WEIGHT].shape[1]:
            # timm is heavy and needed only for timm models, their weights and exports
            from timm.models import adapt_input_conv

            state[PATCH_WEIGHT] = adapt_input_conv(expected[PATCH_WEIGHT].shape[1], state[PATCH_WEIGHT])
    except (RuntimeError, ValueError, KeyError, IndexError, AssertionError, NotImplementedError) as e:
        reason = (str(e).strip().splitlines() or [""])[0][:150]
        raise WeightsError(
            f"{where} cannot be adapted to {vit_name(vit)} ({type(e).__name__}: {reason}); "
            "is it a state dict of that model? (--model)"
        ) from None
    heads = classifier_names(model)
    state = {k: v for k, v in state.items() if k.split(".")[0] not in heads}
    for name, tensor in expected.items():
        if name.split(".")[0] in heads:
            continue
        if name not in state:
            raise WeightsError(
                f"{where} lacks {name!r} that {vit_name(vit)} has; it holds another model's weights "
                "(choose it with --model)"
            )
        if state[name].shape != tensor.shape:
            raise WeightsError(
                f"{where}: {name!r} is {tuple(state[name].shape)} where {vit_name(vit)} has "
                f"{tuple(tensor.shape)}; it holds another model's weights (choose it with --model)"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise WeightsError(
            f"{where} has {extra[0]!r} that {vit_name(vit)} does not; it holds another model's weights "
            "(choose it with --model)"
        )
    model.load_state_dict(state, strict=False)  # strict but for the head, checked above


def vit_name(vit: TimmViT) -> str:
    return vit.model.pretrained_cfg.get("architecture", type(vit.model).__name__)


# --- what changed, as data for the checkpoint; report.py words it ------------------------------------


@dataclass(frozen=True)
class Adaptation:
    """How a timm ViT was made to fit the data and where its weights came from. "before" is the published
    model (or the weights file) and "now" the model that trains; a part that differs was adapted with
    timm's function for it when weights were loaded, or built new when they were not."""

    weights: str  # the timm tag, the file name, or "none"
    source: str  # "timm" | "file" | "none" (random initialisation)
    image_size: tuple[int, int]  # the data's (height, width)
    model_size: tuple[int, int]  # what the model takes: images are resized on the device when different
    channels_before: int | None  # input conv channels of the published model or the file
    channels: int  # of the model that trains
    gray_repeated: bool  # gray images copied to RGB on the device (--channels repeat)
    patch_before: tuple[int, int] | None
    patch: tuple[int, int]
    positions_before: int | None  # rows of the position table
    positions: int
    grid: tuple[int, int]  # the patch grid now
    prefix_tokens: int
    classes_before: int | None  # classes of the published head; None: it had none (DINO)
    classes: int
    freeze: str = "none"  # --freeze
    trainable: int | None = None  # parameters that train, of `total`
    total: int | None = None
    layer_decay: float | None = None
    lowest_lr_scale: float | None = None  # of the patch embedding, with layer decay
    normalisation: str = "data"  # "weights" (the pretrained weights' mean and std) | "data"

    @property
    def loaded(self) -> bool:
        return self.source != "none"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Adaptation:
        tuples = {k: tuple(v) for k, v in values.items() if isinstance(v, list)}
        return cls(**{**values, **tuples})


def adaptation(
    source: dict[str, torch.Size],
    vit: TimmViT,
    info: DatasetInfo,
    weights: Weights,
    gray_repeated: bool,
    **training: Any,
) -> Adaptation:
    """What differs between `source` (the shapes of the published model, or of the file) and `vit`;
    `training` gives the record's other fields (freeze, trainable, total, layer decay, normalisation)."""
    target = {k: v.shape for k, v in vit.model.state_dict().items()}
    was, now = source.get(PATCH_WEIGHT), target[PATCH_WEIGHT]
    head = f"{classifier_names(vit.model)[0]}.weight"
    return Adaptation(
        weights=weights.label,
        source=weights.source,
        image_size=(info.height, info.width),
        model_size=vit.img_size,
        channels_before=None if was is None else was[1],
        channels=now[1],
        gray_repeated=gray_repeated,
        patch_before=None if was is None else tuple(was[-2:]),
        patch=tuple(now[-2:]),
        positions_before=source["pos_embed"][1] if "pos_embed" in source else None,
        positions=target["pos_embed"][1],
        grid=vit.grid_size,
        prefix_tokens=vit.num_prefix_tokens,
        classes_before=source[head][0] if head in source else None,
        classes=len(info.classes),
        **training,
    )


def no_adapt_explanation(native: Native, info: DatasetInfo) -> str | None:
    """Why data shaped like `info` cannot go through the model as pretrained, in one paragraph; None
    when it can."""
    S, p, c = native.img_size, native.patch_size, native.in_chans
    H, W = info.height, info.width
    if (H, W, info.channels) == (S, S, c):
        return None
    grid, prefix = S // p, native.num_prefix_tokens
    prefix_words = "[CLS]" if prefix == 1 else f"{prefix} prefix tokens ([CLS] and others)"
    rows = grid * grid + prefix
    problems = []
    if (H, W) != (S, S):
        patches = (H // p) * (W // p)
        if H % p or W % p:
            cut = (
                f"{H}x{W} is not a multiple of {p} (it holds {patches} whole "
                f"patch{'es' if patches != 1 else ''}, not {grid * grid})"
            )
        else:
            cut = f"{H}x{W} gives {H // p}x{W // p} = {patches} patches, not {grid * grid}"
        problems.append(f"{cut}, so the patch grid and the {rows}-row position table do not fit")
    if info.channels != c:
        problems.append(f"the input conv expects {c} channels where {info.name} has {info.channels}")
    small = next((d for d in range(2, H + 1) if H == W and H % d == 0 and H // d <= 8), None)
    fast = (
        f" (--img-size {H} --patch-size {small} gives a {H // small}x{H // small} grid, "
        f"the fast setting for {info.name})"
        if small
        else ""
    )
    gray = (
        (
            "; --channels adapt sums the input conv's RGB weights into one gray channel, "
            "or --channels repeat copies gray to RGB"
        )
        if info.channels == 1
        else ""
    )
    return (
        f"--no-adapt uses {native.name} exactly as pretrained, and {info.name} cannot go through it "
        f"unchanged. The model cuts a {S}x{S} image with {c} channels into {p}x{p} patches: a "
        f"{grid}x{grid} grid of {grid * grid} patches, plus {prefix_words} makes {rows} tokens, and each "
        f"token position has its own row in a learned position table of {rows} rows; the patch embedding "
        f"is a {p}x{p} convolution over {c} input channels. {info.name}'s images are {H}x{W} with "
        f"{info.channels} channel{'s' if info.channels != 1 else ''}: {'; and '.join(problems)}. "
        "Leave out --no-adapt and vitcli adapts the model with timm's own functions: --img-size resizes "
        "the images on the device and resamples the position table to the new grid (default "
        f"{S}, the pretrained resolution); --patch-size N resamples the patch embedding to NxN "
        f"patches{fast}{gray}; and a new head is made for {info.name}'s {len(info.classes)} classes."
    )
