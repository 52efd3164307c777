"""Rich tables and lines for runs and evaluations. They build renderables; the CLI prints them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich.console import Group as RenderGroup
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from vitcli.cli.fitting import FirstThatFits, keep_whole
from vitcli.events import EpochMetrics
from vitcli.sweeps.results import fmt_pct
from vitcli.training.confidence import shows_interval  # torch-free

if TYPE_CHECKING:  # annotations only: the core is imported when a command runs
    from vitcli.data.preprocessing import Preprocessing
    from vitcli.lab.evaluate import EvalReport
    from vitcli.models.pretrained import Adaptation
    from vitcli.training.run import RunResult
    from vitcli.training.transfer import Transfer


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    if n < 1024:
        return f"{n} B"
    for unit in ("KiB", "MiB", "GiB"):
        n /= 1024
        if n < 1024 or unit == "GiB":
            break
    return f"{n:.1f} {unit}"


def fmt_loss(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def fmt_interval(interval: tuple[float, float]) -> str:
    """A 95% interval in percent to one decimal (its bounds are not known finer): "95.0-98.5%"."""
    low, high = interval
    return f"{100 * low:.1f}-{100 * high:.1f}%"


EPOCH_WIDTH = 80  # an epoch line longer than this is split into two aligned lines


def epoch_line(m: EpochMetrics, epochs: int) -> str:
    """One line per epoch, in rich markup; two aligned lines where one would pass 80 columns (the EMA's
    accuracy, 3-digit epoch counts, long epochs)."""
    width = len(str(epochs))
    head = f"epoch {m.epoch:>{width}}/{epochs} "
    scores = f"train {m.train_loss:.4f} {fmt_pct(m.train_accuracy)}"
    if m.val_accuracy is not None:
        scores += f" val {m.val_loss:.4f} [bold]{fmt_pct(m.val_accuracy)}[/]"
    if m.ema_val_accuracy is not None:  # the moving average of the weights (--ema), validated beside them
        scores += f" ema [bold]{fmt_pct(m.ema_val_accuracy)}[/]"
    costs = f"lr {m.lr:.1e} {m.seconds:.1f}s {m.images_per_s:,.0f} img/s"
    line = f"{head}{scores} {costs}"
    if len(Text.from_markup(line).plain) <= EPOCH_WIDTH:
        return line
    return f"{head}{scores}\n{' ' * len(head)}{costs}"


def run_table(r: RunResult) -> Table:
    model = getattr(r.spec, "name", r.spec.kind)  # a timm model's name, else the kind
    table = Table(title=f"{model} on {r.info.name}", title_justify="left")
    table.add_column("", overflow="fold")
    table.add_column("accuracy", justify="right", overflow="fold")
    table.add_column("loss", justify="right", no_wrap=True)
    best = r.best
    table.add_row(
        f"train (epoch {r.best_epoch}, running mean)", fmt_pct(best.train_accuracy), fmt_loss(best.train_loss)
    )
    if best.val_accuracy is not None:
        if r.weights == "ema":  # the moving average validated better than the weights it follows
            val, loss, which = best.ema_val_accuracy, best.ema_val_loss, ", EMA weights"
        else:
            val, loss, which = best.val_accuracy, best.val_loss, ""
        table.add_row(f"val (best, epoch {r.best_epoch}{which})", fmt_pct(val), fmt_loss(loss))
    elif r.weights == "ema":
        table.add_row(f"kept (epoch {r.best_epoch})", "EMA weights", "")
    table.add_row(
        Text("test", style="bold"), Text(fmt_pct(r.test.accuracy), style="bold"), fmt_loss(r.test.loss)
    )
    if shows_interval(r.test.count):  # a small test set: how far its accuracy can be trusted
        label = Text(f"  95% CI (Wilson), {r.test.count:,} images", style="dim")
        table.add_row(label, fmt_interval(r.test.interval), "")
    for split, (count, total) in r.capped.items():  # --subset capped evaluation too
        option = "--per-class" if r.config.data.per_class else "--subset"
        cut = f"{split} on {count:,} of {total:,} images ({option})"
        table.add_row(Text(cut, style="dim"), "", "")
    table.add_section()
    table.add_row("parameters", f"{r.parameters:,}", "")
    table.add_row("tokens per image", "n/a (CNN)" if r.tokens is None else f"{r.tokens}", "")
    table.add_row("train time", f"{r.train_seconds:.1f} s", "")
    table.add_row("total time", f"{r.total_seconds:.1f} s", "")
    table.add_row("throughput", f"{r.images_per_s:,.0f} img/s", "")
    memory = "peak GPU memory" if r.device.startswith("cuda") else "peak process memory"
    table.add_row(memory, fmt_bytes(r.peak_memory), "")
    table.add_row("device", r.device, "")
    if r.device.startswith("cpu") and r.threads:
        table.add_row("threads", r.threads.describe(), "")
    table.add_row("precision", "bf16 (autocast)" if r.precision == "bf16" else r.precision, "")
    if r.teacher:  # distilled: the teacher ran on every training batch
        t = r.teacher
        table.add_row(
            f"teacher time ({t.kind}, {t.parameters:,} params)", f"{t.seconds:.1f} s ({t.share:.0%})", ""
        )
    keep_whole(table, 1, 2)  # before the words below, which may wrap in the accuracy column
    if r.adaptation:  # finetune: where the weights came from and what was changed to fit the data
        table.add_section()
        for part, change in adaptation_rows(r.adaptation, r.preprocessing, r.info.name):
            table.add_row(part, Text(change, justify="left"), "")
    if r.transfer:  # --init: the checkpoint it started from and what was changed to fit the data
        table.add_section()
        for part, change in transfer_rows(r.transfer):
            table.add_row(part, Text(change, justify="left"), "")
    return table


def transfer_rows(t: Transfer) -> list[tuple[str, str]]:
    """(part, change) in words for a run started with --init (training/transfer.py)."""
    rows = [
        ("init", f"{t.source}: {t.model} on {t.data}"),
        ("loaded", f"{t.loaded} of {t.tensors} tensors as they were"),
        *(("changed", change) for change in t.changes),
    ]
    if t.freeze != "none":
        unit = "conv stages" if t.model == "cnn" else "blocks, the tokenizer and positions"
        what = "all but the head" if t.freeze == "backbone" else f"the first {t.freeze} {unit}"
        rows.append(("frozen", f"{what}: {t.trainable:,} of {t.total:,} parameters train"))
    if t.layer_decay is not None:
        rows.append(
            ("layer decay", f"{t.layer_decay:g} a layer: lr x1 at the head down to x{t.lowest_lr_scale:.3g}")
        )
    return rows


def adaptation_rows(a: Adaptation, preprocessing: Preprocessing, dataset: str) -> list[tuple[str, str]]:
    """(part, change) in words for each part of a fine-tuned timm ViT: as it was published (or built by
    timm), or how it was made to fit the data."""
    words = _AdaptationWords(a)
    weights = {"timm": f"{a.weights} (timm)", "file": f"file {a.weights}"}.get(
        a.source, "none (random initialisation)"
    )
    size = f"{a.image_size[0]}x{a.image_size[1]}"
    resized = f"{size} -> {a.model_size[0]}x{a.model_size[1]}, resized on the device (bilinear)"
    rows = [
        ("weights", weights),
        ("images", resized if a.image_size != a.model_size else f"{size}, as they are"),
        ("channels", words.channels()),
        ("patches", words.patches()),
        ("positions", words.positions()),
        (
            "head",
            f"{a.classes_before if a.classes_before is not None else 'none'} -> {a.classes} classes, new",
        ),
    ]
    if a.freeze != "none":
        what = (
            "backbone (linear probe)" if a.freeze == "backbone" else f"stem and the first {a.freeze} blocks"
        )
        rows.append(("frozen", f"{what}: {a.trainable:,} of {a.total:,} parameters train"))
    if a.layer_decay is not None:
        rows.append(
            (
                "layer decay",
                f"{a.layer_decay:g} per block: lr x1 at the head down to x{a.lowest_lr_scale:.3g}",
            )
        )
    source = "the pretrained weights'" if a.normalisation == "weights" else f"{dataset}'s own"
    mean, std = (", ".join(f"{v:.4g}" for v in values) for values in (preprocessing.mean, preprocessing.std))
    rows.append(("normalisation", f"{source}: mean {mean}, std {std}"))
    return rows


class _AdaptationWords:
    """The words for the parts that timm's functions adapt: each is as pretrained, or changed by one."""

    def __init__(self, a: Adaptation):
        self.a = a
        self.same = "as pretrained" if a.loaded else "as timm builds it"

    def how(self, done: str) -> str:  # with random weights a changed part is simply built new
        return done if self.a.loaded else "new, random"

    def channels(self) -> str:
        a = self.a
        if a.gray_repeated:
            return (
                f"1 -> 3, gray repeated to RGB on the device; input conv {a.channels} channels, {self.same}"
            )
        if a.channels_before is not None and a.channels_before != a.channels:
            conv = "summed over RGB" if a.channels == 1 else "adapted"
            return f"{a.channels_before} -> {a.channels}, input conv " + self.how(
                f"{conv} (timm adapt_input_conv)"
            )
        return f"{a.channels}, {self.same}"

    def patches(self) -> str:
        a = self.a
        patch = f"{a.patch[0]}x{a.patch[1]} px"
        if a.patch_before is None or a.patch_before == a.patch:
            return f"{patch}, {self.same}"
        resampled = self.how("resampled (timm resample_patch_embed)")
        return f"{a.patch_before[0]}x{a.patch_before[1]} -> {patch}, patch embedding {resampled}"

    def positions(self) -> str:
        a = self.a
        grid = f"{a.grid[0]}x{a.grid[1]} + {a.prefix_tokens}"
        if a.positions_before is None or a.positions_before == a.positions:
            return f"{grid}, {self.same}"
        side = math.isqrt(a.positions_before - a.prefix_tokens)
        square = side * side == a.positions_before - a.prefix_tokens
        was = f"{side}x{side} + {a.prefix_tokens}" if square else f"{a.positions_before} rows"
        return f"{was} -> {grid}, position table " + self.how("resampled (timm resample_abs_pos_embed)")


def eval_tables(report: EvalReport) -> list[Table]:
    r = report.result
    summary = Table(title=str(report.checkpoint), title_justify="left")
    interval = shows_interval(r.count)  # a small split: how far its accuracy can be trusted
    for column in ("data set", "split", "images", "accuracy", *(["95% CI"] if interval else []), "loss"):
        summary.add_column(column, justify="left" if column in ("data set", "split") else "right")
    summary.add_row(
        report.dataset,
        report.split,
        f"{r.count:,}",
        Text(fmt_pct(r.accuracy), style="bold"),
        *([fmt_interval(r.interval)] if interval else []),
        fmt_loss(r.loss),
    )

    per_class = Table(title="per class", title_justify="left")
    numbered = _numbered(report.classes)
    if numbered:  # the confusion matrix names these classes by number
        per_class.add_column("#", justify="right", no_wrap=True)
    per_class.add_column("class", overflow="fold")
    per_class.add_column("images", justify="right")
    per_class.add_column("accuracy", justify="right")
    worst = min((a for a in r.per_class_accuracy if a is not None), default=None)
    for i, (name, row, acc) in enumerate(zip(report.classes, r.confusion, r.per_class_accuracy)):
        style = "red" if acc is not None and acc == worst else ""
        number = [str(i)] if numbered else []
        per_class.add_row(*number, name, f"{sum(row):,}", Text(fmt_pct(acc), style=style))
    keep_whole(per_class, *(i for i, c in enumerate(per_class.columns) if c.header != "class"))

    labels = _labels(report.classes)
    blocks = [math.ceil(len(labels) / parts) for parts in range(1, len(labels) + 1)]
    confusion = FirstThatFits(
        *(lambda n=n: _confusion(r.confusion, labels, n) for n in dict.fromkeys(blocks))
    )
    return [summary, per_class, confusion]


def _confusion(confusion: list[list[int]], labels: list[str], per_table: int) -> RenderableType:
    """The confusion matrix, its predicted-class columns `per_table` at a time (one table where it fits)."""
    tables = []
    for start in range(0, len(labels), per_table):
        shown = labels[start : start + per_table]
        part = "" if per_table >= len(labels) else f", predicted {shown[0]} to {shown[-1]}"
        table = Table(title=f"confusion (rows: true class, columns: predicted){part}", title_justify="left")
        table.add_column("", no_wrap=True)
        for label in shown:
            table.add_column(label, justify="right", no_wrap=True)
        for i, (label, row) in enumerate(zip(labels, confusion)):
            cells = [
                Text(str(v), style="bold green" if i == j else ("red" if v else "dim"))
                for j, v in enumerate(row[start : start + per_table], start)
            ]
            table.add_row(label, *cells)
        tables.append(keep_whole(table))
    return RenderGroup(*tables)


def _labels(classes: list[str]) -> list[str]:
    """Short labels for the confusion matrix: MNIST's "0 - zero" ... by its digit, names of up to 8
    characters as they are, and otherwise every class by its number in the per-class table's order."""
    if _numbered(classes):
        return [str(i) for i in range(len(classes))]
    return [name.split(" - ")[0] if " - " in name else name for name in classes]


def _numbered(classes: list[str]) -> bool:
    return any(len(name) > 8 and " - " not in name for name in classes)


# --- sweeps ------------------------------------------------------------------------------------------
