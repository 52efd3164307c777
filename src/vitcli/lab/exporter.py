"""A checkpoint as a model other tools load: a timm folder, or one ONNX file.

    timm    RUN/export-timm/{config.json, model.safetensors}: `timm.create_model("local-dir:FOLDER",
            pretrained=True)` rebuilds it with the same logits, and its pretrained_cfg holds the
            normalisation, input size and class names, so `timm.data.resolve_data_config` and
            `create_transform` prepare images as vitcli does. For every in-house ViT that timm's
            VisionTransformer can express, and for timm fine-tunes (`vitcli finetune`), under their
            own architecture name; the other variants are refused with the reason.
    onnx    RUN/model.onnx: any model (every ViT variant, the CNN, timm fine-tunes). The graph takes
            float images in [0, 1] of the data's own size, (batch, channels, height, width), and holds
            the normalisation (and the resize of timm fine-tunes), so a caller needs no statistics; the
            statistics and class names are in its metadata_props all the same.

Both are written atomically: the folder in a temporary sibling renamed into place, the file by
`atomic_write`.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitcli.data.preprocessing import Preprocessing
from vitcli.errors import ConfigError, OutputError
from vitcli.models.timm_vit import TimmViT
from vitcli.runtime.files import writing
from vitcli.runtime.outputs import exists, remove_stale_temporaries, write_output
from vitcli.runtime.version import __version__
from vitcli.settings.choices import EXPORT_FORMATS
from vitcli.training.checkpoint import Checkpoint, checkpoint_file, load_checkpoint, outputs_home

FORMATS = EXPORT_FORMATS
DEFAULT_NAMES = {"timm": "export-timm", "onnx": "model.onnx"}
# A registered timm ViT whose LayerNorm has eps 1e-5, vitcli's (nn.LayerNorm's default); the plain vit_*
# models use 1e-6, which moves the logits. Every size and switch comes from model_args in config.json.
TIMM_ARCHITECTURE = "vit_xsmall_patch16_clip_224"
ONNX_OPSET = 17  # LayerNormalization is an operator from 17 on; onnxruntime 1.16 runs up to 19
ONNX_FIX = "export it with --format onnx"  # which takes every model


def export_checkpoint(
    path: str | Path, format: str, out: str | Path | None = None, overwrite: bool = False
) -> Path:
    """Write checkpoint `path` (a model.safetensors or its run directory) as `format` (timm or onnx) to
    `out` (default: beside the checkpoint, RUN/export-timm or RUN/model.onnx); returns where it went.
    An existing export is replaced only with `overwrite`."""
    if format not in FORMATS:
        raise ConfigError(f"--format {format!r} is not one of {', '.join(FORMATS)}; choose one of them")
    source = checkpoint_file(path)
    target = Path(out) if out is not None else outputs_home(source) / DEFAULT_NAMES[format]
    _check_target(target, format, overwrite)
    checkpoint = load_checkpoint(source)
    remove_stale_temporaries(target)  # what an export killed half-way left here
    if format == "timm":
        model = timm_model(checkpoint)  # refused before anything is written
        _write_folder(target, lambda folder: _save_timm(model, checkpoint, folder), overwrite)
    else:
        _write_onnx(checkpoint, target, overwrite)
    return target


def _check_target(target: Path, format: str, overwrite: bool) -> None:
    if not target.exists():
        return
    if not overwrite:
        raise exists(target, "--out")
    if format == "onnx" and target.is_dir():
        raise OutputError(f"{target} is a directory; pass --out with the path of the .onnx file to write")
    # --overwrite replaces what export made, never a run's checkpoint or any other file at that path.
    if format == "onnx" and not _is_onnx_export(target):
        raise OutputError(
            f"{target} is not an ONNX export of vitcli (no vitcli_version in its metadata), so --overwrite "
            "leaves it alone; choose another --out"
        )
    # --overwrite deletes the old export: make sure it is one, not a run directory or a home folder.
    if format == "timm" and not (target.is_dir() and (target / "config.json").is_file()):
        raise OutputError(
            f"{target} is not a timm export folder (no config.json), so --overwrite leaves it alone; "
            "choose another --out"
        )


def _is_onnx_export(path: Path) -> bool:
    """Whether `path` is an ONNX model that vitcli exported (its metadata says which vitcli wrote it)."""
    try:
        # extra vitcli[onnx], needed only for --format onnx
        import onnx

        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not ONNX at all (protobuf's DecodeError, OSError, ...) or no onnx
        return False
    return any(prop.key == "vitcli_version" for prop in model.metadata_props)


# --- timm ----------------------------------------------------------------------------------------------


def timm_refusal(checkpoint: Checkpoint) -> str | None:
    """Why timm's VisionTransformer cannot hold this checkpoint's model with the same logits; None: it can."""
    reason = checkpoint.config.model.timm_refusal()
    return None if reason is None else f"{reason}; {ONNX_FIX}"


def timm_model(checkpoint: Checkpoint) -> nn.Module:
    """The checkpoint's model as a timm model with the same weights (a ConfigError naming the variant if
    timm cannot express it)."""
    refusal = timm_refusal(checkpoint)
    if refusal:
        raise ConfigError(refusal)
    if isinstance(checkpoint.model, TimmViT):
        return checkpoint.model.model  # a fine-tuned model holds the timm model itself
    return _timm_from_vit(checkpoint)


def _timm_from_vit(checkpoint: Checkpoint) -> nn.Module:
    """An in-house ViT as timm's VisionTransformer: vitcli's modules carry timm's names (patch_embed.proj,
    blocks.N.attn.qkv, ...) and compute the same thing, so the state dict loads as it is."""
    # timm is heavy and needed only for timm models, their weights and exports
    import timm

    spec, info, vit = checkpoint.config.model, checkpoint.info, checkpoint.model
    mlp_dim = spec.mlp_dim or 4 * spec.embed_dim
    ratio = mlp_dim / spec.embed_dim
    if int(spec.embed_dim * ratio) != mlp_dim:  # timm's hidden size is int(dim * ratio): never round down
        ratio = math.nextafter(ratio, math.inf)
    cls = spec.pool == "cls"
    model = timm.create_model(
        TIMM_ARCHITECTURE,
        pretrained_cfg={
            "architecture": TIMM_ARCHITECTURE,
            "first_conv": "patch_embed.proj",
            "classifier": "head",
        },
        img_size=(info.height, info.width),
        patch_size=spec.patch_size,
        in_chans=info.channels,
        num_classes=len(info.classes),
        embed_dim=spec.embed_dim,
        depth=spec.depth,
        num_heads=spec.heads,  # timm's Attention with one head is vitcli's single-head attention
        mlp_ratio=ratio,
        pre_norm=False,  # the CLIP architecture's norm before the blocks; vitcli has none
        class_token=cls,
        global_pool="token" if cls else "avg",
        fc_norm=False,  # gap: vitcli normalises each token, then averages (timm's avg default: the reverse)
        pos_embed="none" if spec.pos_embed == "none" else "learn",
    )
    state = dict(vit.state_dict())
    if spec.pos_embed == "sinusoidal":  # a fixed table vitcli does not save: timm holds it as a learned one
        state["pos_embed"] = vit.pos_embed.detach().clone()
    model.load_state_dict(state)
    return model.eval()


def _save_timm(model: nn.Module, checkpoint: Checkpoint, folder: Path) -> None:
    # timm is heavy and needed only for timm models, their weights and exports
    from timm.models import save_for_hf

    channels = model.patch_embed.proj.in_channels
    height, width = model.patch_embed.img_size
    mean, std = _per_channel(checkpoint.preprocessing, channels)
    save_for_hf(
        model,
        str(folder),
        model_config={"label_names": list(checkpoint.info.classes)},
        safe_serialization=True,
        # vitcli scales pixels to [0, 1], resizes bilinearly to the model's size (timm fine-tunes) and
        # normalises; no crop.
        data_config={
            "input_size": (channels, height, width),
            "mean": mean,
            "std": std,
            "interpolation": "bilinear",
            "crop_pct": 1.0,
        },
    )


def _per_channel(preprocessing: Preprocessing, channels: int) -> tuple[list[float], list[float]]:
    """The normalisation for the model's input channels: gray repeated to RGB (finetune --channels repeat)
    repeats its one mean and std."""
    mean, std = list(preprocessing.mean), list(preprocessing.std)
    if len(mean) == 1 and channels > 1:
        mean, std = mean * channels, std * channels
    return mean, std


def _write_folder(target: Path, fill: Callable[[Path], None], overwrite: bool) -> None:
    """`fill` a temporary sibling folder, then rename it to `target`: over an old export only with
    `overwrite`, and never over one that another process wrote meanwhile."""
    with writing(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        old = tmp.with_suffix(".old")
        try:
            fill(tmp)
            mask = os.umask(0)  # reading the umask means setting it; put it straight back
            os.umask(mask)
            os.chmod(tmp, 0o777 & ~mask)  # mkdtemp makes the folder private, safetensors its file
            for file in tmp.iterdir():
                os.chmod(file, 0o666 & ~mask)
            if overwrite and target.exists():
                os.replace(target, old)
            try:
                # A folder renamed onto a folder that is there and not empty fails: of two exports to the
                # same --out at once, the second is told the first's is there, rather than replacing it.
                os.rename(tmp, target)
            except OSError as e:
                if old.exists():  # put the old export back rather than leave nothing
                    os.replace(old, target)
                if e.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise exists(target, "--out") from None
                raise
            except BaseException:
                if old.exists():
                    os.replace(old, target)
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)


# --- onnx ----------------------------------------------------------------------------------------------


class Prepared(nn.Module):
    """A model with its preprocessing in front: float images in [0, 1] of the data's size -> logits."""

    def __init__(self, model: nn.Module, preprocessing: Preprocessing, image_size: tuple[int, int]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(preprocessing.mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(preprocessing.std).view(1, -1, 1, 1))
        # Decided now: the graph's input size is fixed, so a resize to the same size would do nothing.
        self.size = preprocessing.size if preprocessing.size not in (None, image_size) else None
        self.channels = preprocessing.channels

    def forward(self, images: Tensor) -> Tensor:
        x = (images - self.mean) / self.std
        if self.size is not None:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        if self.channels is not None and x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)
        return self.model(x)


def onnx_metadata(checkpoint: Checkpoint) -> dict[str, str]:
    """The metadata_props of an export: what the input is, the normalisation inside, the class names."""
    info, preprocessing = checkpoint.info, checkpoint.preprocessing
    resized = preprocessing.size not in (None, (info.height, info.width))
    inside = "normalised and resized to {}x{}".format(*preprocessing.size) if resized else "normalised"
    return {
        "input": (
            f"image: float32 (batch, {info.channels}, {info.height}, {info.width}), pixel values scaled to "
            f"[0, 1]; {inside} inside the graph"
        ),
        "output": f"logits: float32 (batch, {len(info.classes)}), in the order of classes",
        "mean": json.dumps(list(preprocessing.mean)),
        "std": json.dumps(list(preprocessing.std)),
        "model_size": json.dumps(
            list(preprocessing.size) if preprocessing.size else [info.height, info.width]
        ),
        "classes": json.dumps(list(info.classes)),
        "model": json.dumps(checkpoint.config.model.to_dict()),
        "vitcli_version": __version__,
    }


def _write_onnx(checkpoint: Checkpoint, target: Path, overwrite: bool) -> None:
    try:
        # extra vitcli[onnx], needed only for --format onnx
        import onnx
    except ImportError:
        raise ConfigError(
            "--format onnx needs the onnx package; install it with pip install 'vitcli[onnx]'"
        ) from None
    info = checkpoint.info
    prepared = Prepared(checkpoint.model, checkpoint.preprocessing, (info.height, info.width)).eval()
    example = torch.rand(2, info.channels, info.height, info.width)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter warns that it is the legacy one, and tracing warns about timm's
            # shape checks, which hold for the fixed input size; neither is the user's concern.
            warnings.simplefilter("ignore")
            # dynamo=False: the TorchScript-based exporter, which needs no onnxscript and exports a
            # dynamic batch dimension from dynamic_axes.
            torch.onnx.export(
                prepared,
                (example,),
                str(tmp),
                dynamo=False,
                input_names=["image"],
                output_names=["logits"],
                dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=ONNX_OPSET,
            )
        graph = _float_eye_likes(onnx.load(str(tmp)))
        onnx.helper.set_model_props(graph, onnx_metadata(checkpoint))
        onnx.save(graph, str(tmp))

    write_output(target, write, "--out", overwrite)


def _float_eye_likes(model):
    """`model` with each boolean EyeLike (LSA's diagonal mask, models/lsa.py) computed in floats and cast
    back: onnxruntime has no EyeLike kernel for booleans. The same values; other graphs are unchanged."""
    # extra vitcli[onnx], needed only for --format onnx
    import onnx
    from onnx import TensorProto, helper

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "EyeLike" or types.get(node.output[0]) != TensorProto.BOOL:
            nodes.append(node)
            continue
        shape, eye = f"{node.name}/float_shape", f"{node.name}/float_eye"
        nodes += [
            helper.make_node("Cast", [node.input[0]], [shape], to=TensorProto.FLOAT),
            helper.make_node("EyeLike", [shape], [eye], name=node.name, dtype=TensorProto.FLOAT),
            helper.make_node("Cast", [eye], [node.output[0]], to=TensorProto.BOOL),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


# --- what the command says -----------------------------------------------------------------------------


def describe_export(target: Path, format: str) -> list[str]:
    """Lines saying what an export holds and how to use it, read back from the written files."""
    if format == "timm":
        config = json.loads((target / "config.json").read_text(encoding="utf-8"))
        cfg = config["pretrained_cfg"]
        return [
            f"timm {config['architecture']} (sizes in config.json's model_args), input "
            f"{tuple(cfg['input_size'])}, {config['num_classes']} classes",
            f"normalisation in pretrained_cfg, as timm.data.resolve_data_config reads it: mean {cfg['mean']} "
            f"std {cfg['std']}",
            f'load with timm.create_model("local-dir:{target}", pretrained=True)',
        ]
    # extra vitcli[onnx], needed only for --format onnx
    import onnx

    props = {p.key: p.value for p in onnx.load(str(target), load_external_data=False).metadata_props}
    return [
        f"input {props['input']}",
        f"output {props['output']}",
        f"normalisation inside: mean {props['mean']} std {props['std']} (also in metadata_props)",
    ]
