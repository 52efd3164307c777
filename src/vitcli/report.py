"""Rich tables and lines for runs and evaluations. They build renderables; the CLI prints them."""

from __future__ import annotations

import math

from rich import box
from rich.table import Table
from rich.text import Text

from vitcli.events import EpochMetrics
from vitcli.models.pretrained import Adaptation
from vitcli.preprocessing import Preprocessing
from vitcli.run import EvalReport, RunResult
from vitcli.sweep import fmt_value
from vitcli.sweep_results import FINISHED, Group


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


def fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def fmt_loss(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def epoch_line(m: EpochMetrics, epochs: int) -> str:
    """One line per epoch, in rich markup."""
    width = len(str(epochs))
    val = (
        ""
        if m.val_accuracy is None
        else f"  val loss {m.val_loss:.4f} acc [bold]{fmt_pct(m.val_accuracy)}[/]"
    )
    if m.ema_val_accuracy is not None:  # the moving average of the weights (--ema), validated beside them
        val += f" ema [bold]{fmt_pct(m.ema_val_accuracy)}[/]"
    return (
        f"epoch {m.epoch:>{width}}/{epochs}  train loss {m.train_loss:.4f} acc {fmt_pct(m.train_accuracy)}"
        f"{val}  lr {m.lr:.2e}  {m.seconds:.1f}s  {m.images_per_s:,.0f} img/s"
    )


def run_table(r: RunResult) -> Table:
    model = getattr(r.spec, "name", r.spec.kind)  # a timm model's name, else the kind
    table = Table(title=f"{model} on {r.info.name}", title_justify="left")
    table.add_column("")
    table.add_column("accuracy", justify="right")
    table.add_column("loss", justify="right")
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
    table.add_section()
    table.add_row("parameters", f"{r.parameters:,}", "")
    table.add_row("tokens per image", "n/a (CNN)" if r.tokens is None else f"{r.tokens}", "")
    table.add_row("train time", f"{r.train_seconds:.1f} s", "")
    table.add_row("total time", f"{r.total_seconds:.1f} s", "")
    table.add_row("throughput", f"{r.images_per_s:,.0f} img/s", "")
    memory = "peak GPU memory" if r.device.startswith("cuda") else "peak process memory"
    table.add_row(memory, fmt_bytes(r.peak_memory), "")
    table.add_row("device", r.device, "")
    if r.teacher:  # distilled: the teacher ran on every training batch
        t = r.teacher
        table.add_row(
            f"teacher time ({t.kind}, {t.parameters:,} params)", f"{t.seconds:.1f} s ({t.share:.0%})", ""
        )
    if r.adaptation:  # finetune: where the weights came from and what was changed to fit the data
        table.add_section()
        for part, change in adaptation_rows(r.adaptation, r.preprocessing, r.info.name):
            table.add_row(part, Text(change, justify="left"), "")
    return table


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
    for column in ("data set", "split", "images", "accuracy", "loss"):
        summary.add_column(column, justify="left" if column in ("data set", "split") else "right")
    summary.add_row(
        report.dataset,
        report.split,
        f"{r.count:,}",
        Text(fmt_pct(r.accuracy), style="bold"),
        fmt_loss(r.loss),
    )

    per_class = Table(title="per class", title_justify="left")
    per_class.add_column("class")
    per_class.add_column("images", justify="right")
    per_class.add_column("accuracy", justify="right")
    worst = min((a for a in r.per_class_accuracy if a is not None), default=None)
    for name, row, acc in zip(report.classes, r.confusion, r.per_class_accuracy):
        style = "red" if acc is not None and acc == worst else ""
        per_class.add_row(name, f"{sum(row):,}", Text(fmt_pct(acc), style=style))

    confusion = Table(title="confusion (rows: true class, columns: predicted)", title_justify="left")
    confusion.add_column("")
    labels = [_short(c) for c in report.classes]
    for label in labels:
        confusion.add_column(label, justify="right")
    for i, (label, row) in enumerate(zip(labels, r.confusion)):
        cells = [
            Text(str(v), style="bold green" if i == j else ("red" if v else "dim")) for j, v in enumerate(row)
        ]
        confusion.add_row(label, *cells)
    return [summary, per_class, confusion]


def _short(name: str) -> str:
    # MNIST's classes are "0 - zero" ...: the digit alone keeps the confusion matrix narrow.
    return name.split(" - ")[0] if " - " in name else name[:8]


def half_blocks(rgb) -> Text:
    """An (H, W, 3) uint8 picture as text: each character is two pixels, the upper one as the colour of
    '▀' and the lower one as its background, so a 28x28 digit takes 28 columns and 14 lines."""
    from rich.color import Color
    from rich.style import Style

    text = Text()
    height = rgb.shape[0]
    for y in range(0, height, 2):
        for x in range(rgb.shape[1]):
            top = Color.from_rgb(*(int(v) for v in rgb[y, x]))
            bottom = Color.from_rgb(*(int(v) for v in rgb[y + 1, x])) if y + 1 < height else None
            text.append("▀", Style(color=top, bgcolor=bottom))
        if y + 2 < height:
            text.append("\n")
    return text


# --- sweeps ------------------------------------------------------------------------------------------


def fmt_mean_std(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "n/a"
    return fmt_pct(mean) if std is None else f"{100 * mean:.2f} ± {100 * std:.2f}%"


def sweep_table(groups: list[Group], axes: list[str], title: str) -> Table:
    """One row per group of runs (the seeds of one setting), best test accuracy first and highlighted.

    Peak memory is shown for CUDA runs only: on the CPU vitcli can only read the process's peak, which
    in a sweep (one process) spans every run so far (results.jsonl still has it). The status column
    appears when some run failed. Both keep the table within an 80-column terminal where they can.
    """
    columns = [a for a in axes if a != "seed"]
    seeds = any(len(g.seeds) > 1 for g in groups)
    cuda = any(str(g.device).startswith("cuda") for g in groups)
    failures = any(g.status != FINISHED for g in groups)
    # No column rules and no edge padding: ten or more columns still fit an 80-column terminal.
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
    )
    for name in columns:
        table.add_column(name, justify="right", no_wrap=True)
    if seeds:
        table.add_column("seeds", justify="right")
    for name in ("params", "tokens", "val acc", "test acc", "train s", "img/s") + (
        ("peak mem",) if cuda else ()
    ):
        table.add_column(name, justify="right", no_wrap=True)
    if failures:
        table.add_column("status", no_wrap=True, min_width=6)
    for i, g in enumerate(groups):
        cells = [fmt_value(g.values.get(a, "")) for a in columns]
        if seeds:
            cells.append(",".join(map(str, g.seeds)))
        cells += [
            "n/a" if g.parameters is None else f"{g.parameters:,}",
            "n/a" if g.tokens is None else str(g.tokens),
            fmt_mean_std(g.val_accuracy, g.val_std),
            fmt_mean_std(g.test_accuracy, g.test_std),
            "n/a" if g.train_seconds is None else f"{g.train_seconds:.1f}",
            "n/a" if g.images_per_s is None else f"{g.images_per_s:,.0f}",
        ]
        if cuda:
            cells.append(fmt_bytes(g.peak_memory) if str(g.device).startswith("cuda") else "n/a")
        if failures:
            cells.append(g.status)
        best = i == 0 and g.test_accuracy is not None
        table.add_row(*cells, style="bold green" if best else ("red" if g.finished == 0 else None))
    if not cuda and any(g.finished for g in groups):
        table.caption = "peak memory: CUDA runs only (on the CPU only the whole process's peak is known)"
    return table


def planned_table(planned: list[dict], axes: list[str], title: str) -> Table:
    """A dry run: each planned run's size, or why it cannot run."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    for name in axes:
        table.add_column(name, justify="right")
    for name in ("params", "tokens"):
        table.add_column(name, justify="right")
    table.add_column("plan")
    for p in planned:
        if p["error"]:
            plan = Text(f"invalid: {p['error']}", style="red")
        else:
            plan = {"finished": "done, skipped", "failed": "retried"}.get(p["recorded"], "run")
        table.add_row(
            str(p["index"]),
            *[fmt_value(p["values"][a]) for a in axes],
            "n/a" if p["parameters"] is None else f"{p['parameters']:,}",
            "n/a" if p["tokens"] is None else str(p["tokens"]),
            plan,
        )
    return table
