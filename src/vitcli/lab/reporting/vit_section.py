"""What the ViTs look at: each ViT's attention and rollout for the same test images and inspect's distance
and position figures (the commands' own pictures), and a ViT against a CNN."""

from __future__ import annotations

import tempfile
from pathlib import Path

from vitcli.errors import VitcliError
from vitcli.lab import attention_figure
from vitcli.lab.explain import explain_checkpoint
from vitcli.lab.inspection import figures as inspect_figures
from vitcli.lab.inspection.analysis import inspect_checkpoint
from vitcli.lab.reporting.document import Figure, Heading, Note, Section, Table, Text
from vitcli.lab.reporting.ranking import ranked
from vitcli.lab.reporting.report_options import Options
from vitcli.lab.reporting.study import ReportRun, Study
from vitcli.settings.specs import CNNSpec
from vitcli.sweeps.results import fmt_pct

MAX_VIEWED = 4  # ViT runs whose attention is drawn (the best of them)
INSPECT_IMAGES = 256  # images behind the mean attention distance
AGAINST_IMAGES = 2000  # test images a ViT and a CNN are compared on (drawn at random, seed 0)


def look(study: Study, options: Options) -> Section:
    section = Section("What the ViTs look at")
    viewed = [r for r in ranked([r for r in study.runs if r.sweep is None]) if _finished_vit(r)]
    for sweep in study.sweeps:  # a sweep's best ViT (its best run may be a CNN)
        viewed += ranked([r for r in sweep.runs if _finished_vit(r)])[:1]
    if len(viewed) > MAX_VIEWED:
        section.blocks.append(Note(f"attention is drawn for the best {MAX_VIEWED} of {len(viewed)} ViT runs"))
        viewed = ranked(viewed)[:MAX_VIEWED]
    indices = list(range(options.images))
    with tempfile.TemporaryDirectory(prefix="vitcli-report-") as tmp:
        for k, run in enumerate(viewed):
            section.blocks.append(Heading(run.label))
            section.blocks += _attention(run, indices, options, Path(tmp) / f"a{k}")
            section.blocks += _inspect(run, options, Path(tmp) / f"i{k}")
        cnn = next(
            (r for r in ranked(study.runs) if isinstance(r.config.model, CNNSpec) and r.summary.finished),
            None,
        )
        vit = next((r for r in viewed if cnn is not None and r.summary.dataset == cnn.summary.dataset), None)
        if vit is not None and cnn is not None:
            section.blocks.append(Heading(f"{vit.label} against {cnn.label}"))
            section.blocks += _against(vit, cnn, options, Path(tmp) / "against")
    if not section.blocks:
        section.blocks.append(Note("no finished ViT in the report: no attention to draw"))
    return section


def _drawn(sample) -> str:
    return (
        "all of them"
        if len(sample.labels) >= sample.size
        else f"drawn at random with seed 0 from {sample.size:,}"
    )


def _finished_vit(run: ReportRun) -> bool:
    return run.summary.finished and run.config.model.has_attention


def _attention(run: ReportRun, indices: list[int], options: Options, out: Path) -> list:
    try:
        report = attention_figure.draw_report(
            explain_checkpoint(
                run.summary.run_dir, indices=indices, data_dir=options.data_dir, device=options.device
            ),
            out,
        )
    except VitcliError as e:
        return [Note(f"attention of {run.label} not drawn: {e}")]
    return [
        Figure(
            f"attention-{run.summary.run_dir.name}-{Path(p).stem}",
            Path(p).read_bytes(),
            f"{run.label}, {image.source}: each block's and head's attention of the {image.query} token, "
            "and the rollout",
        )
        for image, p in zip(report.images, report.pictures)
    ]


def _inspected(run: ReportRun, options: Options, out: Path, **asked):
    """`vitcli inspect`'s report of a run, its pictures drawn into `out`."""
    report = inspect_checkpoint(
        run.summary.run_dir, data_dir=options.data_dir, device=options.device, **asked
    )
    return inspect_figures.draw_report(report, out)


def _inspect(run: ReportRun, options: Options, out: Path) -> list:
    try:
        report = _inspected(run, options, out, figures=["distance", "positions"], images=INSPECT_IMAGES)
    except VitcliError as e:
        return [Note(f"inspect's figures of {run.label} not drawn: {e}")]
    captions = {
        "distance": f"{run.label}: mean attention distance per head and block over {INSPECT_IMAGES} "
        "test images "
        "(vitcli inspect; the dashed line: what uniform attention would give)",
        "positions": f"{run.label}: cosine similarity of each position embedding with the others "
        "(vitcli inspect)",
    }
    blocks: list = [Note(f"{run.label}: {why}") for why in report.skipped.values()]
    for name, caption in captions.items():
        for p in report.pictures.get(name, []):
            blocks.append(Figure(f"{name}-{run.summary.run_dir.name}", Path(p).read_bytes(), caption))
    return blocks


def _against(vit: ReportRun, cnn: ReportRun, options: Options, out: Path) -> list:
    try:
        report = _inspected(vit, options, out, against=cnn.summary.run_dir, images=AGAINST_IMAGES)
    except VitcliError as e:
        return [Note(f"{vit.label} against {cnn.label} not drawn: {e}")]
    facts = report.against.to_dict()
    blocks: list = [
        Text(
            f"On {facts['images']:,} {facts['split']} images ({_drawn(report.sample)}): "
            f"{vit.label} {fmt_pct(facts['a_accuracy'])}, "
            f"{cnn.label} {fmt_pct(facts['b_accuracy'])}; both right {facts['both_right']:,}, only the ViT "
            f"{facts['only_a']:,}, only the CNN {facts['only_b']:,}, both wrong {facts['both_wrong']:,}. "
            f"McNemar's exact test of the disagreements: p = {facts['mcnemar_p']:.3g}."
        ),
        Table(
            "Per-class test accuracy (points: ViT minus CNN)",
            ["class", "images", "ViT", "CNN", "difference"],
            [
                [
                    row["class"],
                    f"{row['images']:,}",
                    fmt_pct(row["a_accuracy"]),
                    fmt_pct(row["b_accuracy"]),
                    f"{100 * row['difference']:+.2f}",
                ]
                for row in facts["per_class"]
            ],
            numeric=[1, 2, 3, 4],
        ),
    ]
    for p in report.pictures.get("against", []):
        blocks.append(
            Figure(
                f"against-{cnn.summary.run_dir.name}",
                Path(p).read_bytes(),
                f"Images only {vit.label} gets right, and images only {cnn.label} gets right "
                "(vitcli inspect --against)",
            )
        )
    return blocks
