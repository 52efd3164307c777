"""The report's sections, each only where it applies, built from a Study:

what was run     each run's command, settings, seed, data (sizes, checksum), versions, device,
                 threads, precision, date and commit (provenance.json)
results          one table, best first, the baseline marked and the others' deltas to it; seeds
curves           loss and accuracy per epoch; runs that differ only in seed as a mean and a band
sweeps           accuracy against each swept option and against cost (the front marked), and the
                 share of the accuracy's variance each option explains
what the ViTs look at   attention and rollout of the same test images, inspect's distance and
                 positions; a ViT against a CNN
where it stands  each run's test accuracy among published and measured figures (references.toml)
"""

from __future__ import annotations

import datetime
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitcli.errors import VitcliError
from vitcli.lab import attention_figure
from vitcli.lab.explain import explain_checkpoint
from vitcli.lab.inspection import figures as inspect_figures
from vitcli.lab.inspection.analysis import inspect_checkpoint
from vitcli.lab.reporting import plots, stats
from vitcli.lab.reporting.document import Code, Document, Figure, Heading, Note, Section, Table, Text
from vitcli.lab.reporting.references import references_for
from vitcli.lab.reporting.study import ReportRun, ReportSweep, Study
from vitcli.runtime.version import __version__
from vitcli.settings.specs import CNNSpec
from vitcli.sweeps.results import describe, fmt_value

SMALL_TEST = 10_000  # a test set under this many images gets its accuracy's 95% interval
ATTENTION_IMAGES = 3  # test images shown per ViT
MAX_VIEWED = 4  # ViT runs whose attention is drawn (the best of them)
INSPECT_IMAGES = 256  # images behind the mean attention distance
AGAINST_IMAGES = 2000  # test images a ViT and a CNN are compared on (drawn at random, seed 0)


@dataclass
class Options:
    baseline: str | None = None  # a run's label or directory; default: the first CNN, else the first run
    data_dir: str | None = None  # where the runs' data sets are, for the attention figures
    images: int = ATTENTION_IMAGES
    device: str = "auto"
    look: bool = True  # draw what the ViTs look at (loads data and models)


@dataclass
class Report:
    document: Document
    study: Study
    baseline: ReportRun | None
    numbers: list[dict[str, Any]] = field(default_factory=list)  # the results table's runs, as JSON


def fmt_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def fmt_int(x: int | None) -> str:
    return "n/a" if x is None else f"{x:,}"


def fmt_seconds(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.1f}"


def build(study: Study, options: Options | None = None) -> Report:
    options = options or Options()
    baseline = choose_baseline(study, options.baseline)
    sections = [
        what_was_run(study),
        results(study, baseline),
        curves(study),
        *([sweeps(study)] if study.sweeps else []),
        *([look(study, options)] if options.look else []),
        where_it_stands(study),
    ]
    if study.notes:
        sections.insert(0, Section("What is missing", [Note(n) for n in study.notes]))
    lead = [
        f"{len(study.runs)} run(s)"
        + (f", {len(study.sweeps)} sweep(s)" if study.sweeps else "")
        + f"; written {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z} by vitcli {__version__}",
    ]
    if baseline is not None:
        lead.append(f"baseline: {baseline.label} ({baseline.summary.model})")
    document = Document("vitcli report", lead, [s for s in sections if s.blocks])
    return Report(document, study, baseline, [run_numbers(r, baseline) for r in ranked(study.runs)])


# --- the baseline and the ranking --------------------------------------------------------------------


def choose_baseline(study: Study, wanted: str | None) -> ReportRun | None:
    if wanted is not None:
        for run in study.runs:
            if (
                wanted in (run.label, str(run.summary.run_dir))
                or Path(wanted).resolve() == run.summary.run_dir.resolve()
            ):
                return run
        labels = ", ".join(r.label for r in study.runs[:8])
        raise VitcliError(f"--baseline {wanted} is none of the report's runs; pass one of: {labels}")
    cnns = [r for r in study.runs if isinstance(r.config.model, CNNSpec) and r.sweep is None]
    lone = [r for r in study.runs if r.sweep is None]
    return (cnns or lone or study.runs or [None])[0]


def ranked(runs: list[ReportRun]) -> list[ReportRun]:
    """Best test accuracy first; runs without one (stopped before their test) last, by validation."""
    return sorted(
        runs,
        key=lambda r: (
            r.summary.test_accuracy is None,
            -(r.summary.test_accuracy or 0.0),
            -(r.summary.best_val or 0.0),
        ),
    )


def interval(run: ReportRun) -> tuple[float, float] | None:
    accuracy, count = run.summary.test_accuracy, run.test_count
    if accuracy is None or not count or count >= SMALL_TEST:
        return None
    return stats.accuracy_interval(accuracy, count)


def run_numbers(run: ReportRun, baseline: ReportRun | None) -> dict[str, Any]:
    """A run's row of the results table as JSON (`vitcli report --json`'s "runs"): compare's summary,
    its test set's size and interval, and its delta to the baseline."""
    summary = run.summary.to_dict()
    summary.pop("history")
    ci = interval(run)
    return {
        **summary,
        "seed": run.seed,
        "sweep": str(run.sweep) if run.sweep else None,
        "values": run.values,
        "test_count": run.test_count,
        "test_interval": list(ci) if ci else None,
        "subset": run.capped,
        "baseline": baseline is run,
        "delta_test": _delta(run, baseline),
        "provenance": run.provenance,
    }


def _delta(run: ReportRun, baseline: ReportRun | None) -> float | None:
    if baseline is None or baseline is run or run.summary.dataset != baseline.summary.dataset:
        return None
    return stats.delta(run.summary.test_accuracy, baseline.summary.test_accuracy)


# --- what was run ------------------------------------------------------------------------------------


def what_was_run(study: Study) -> Section:
    section = Section("What was run")
    for run in [r for r in study.runs if r.sweep is None]:
        section.blocks += [Heading(run.label), provenance_table(run)]
        section.blocks.append(Code(run.config.to_toml(), f"{run.summary.run_dir}/config.toml"))
    for sweep in study.sweeps:
        section.blocks += sweep_provenance(sweep)
    return section


def provenance_table(run: ReportRun) -> Table | Note:
    facts = run.provenance
    rows = [
        ["run directory", str(run.summary.run_dir)],
        ["model", run.summary.model],
        ["seed", str(run.seed)],
    ]
    if facts is None:
        rows.append(["provenance", "not recorded: the run was made before vitcli wrote provenance.json"])
        rows.append(["data", _data_words(run, None)])
        return Table(f"{run.label}: how it was made", ["", ""], rows)
    rows += [
        ["command", facts.get("command") or "not recorded"],
        ["data", _data_words(run, facts.get("data"))],
        ["started", facts.get("started") or "not recorded"],
        ["device", _device_words(facts)],
        ["versions", ", ".join(f"{k} {v}" for k, v in (facts.get("versions") or {}).items())],
        ["git commit", _git_words(facts.get("git"), facts.get("cwd"))],
    ]
    for resume in facts.get("resumes", []):
        rows.append(
            ["resumed", f"{resume.get('started')}: {resume.get('command')} on {_device_words(resume)}"]
        )
    return Table(f"{run.label}: how it was made", ["", ""], rows)


def _data_words(run: ReportRun, data: dict[str, Any] | None) -> str:
    words = run.summary.dataset
    if data:
        words += f": {data['train']:,} train, {data['val']:,} validation, {data['test']:,} test images"
        words += f"; sha256 {data['sha256'][:16]}"
    if run.capped:
        words += "; cut by --subset: " + ", ".join(f"{k} {a:,} of {b:,}" for k, (a, b) in run.capped.items())
    return words


def _device_words(facts: dict[str, Any]) -> str:
    if not facts.get("device"):
        return "not recorded"
    processes = facts.get("processes") or 1
    return (
        f"{facts['device']} ({facts.get('device_name')}), {facts.get('threads')} thread(s), "
        f"{facts.get('precision')}" + (f", {processes} processes" if processes > 1 else "")
    )


def _git_words(git: dict[str, Any] | None, cwd: str | None) -> str:
    if not git:
        return f"none: {cwd} was not in a git working tree" if cwd else "not recorded"
    return git["commit"][:12] + (" with uncommitted changes" if git.get("dirty") else "")


def sweep_provenance(sweep: ReportSweep) -> list:
    first = next((r for r in sweep.runs if r.provenance), None)
    blocks: list = [Heading(f"sweep {sweep.dir.name}")]
    swept = ", ".join(a for a in sweep.axes) or "nothing"
    blocks.append(
        Text(
            f"{sweep.dir}: {len(sweep.rows)} runs over {swept}; {len(sweep.runs)} finished and readable, "
            f"{len(sweep.failed)} failed."
        )
    )
    if first is not None:
        blocks.append(
            Code(first.provenance.get("command") or "not recorded", "the command (from its first run)")
        )
    rows = []
    for run in sweep.runs:
        facts = run.provenance or {}
        data = facts.get("data")
        rows.append(
            [
                run.summary.run_dir.name,
                describe({k: v for k, v in run.values.items() if k != "seed"}),
                str(run.seed),
                facts.get("started") or "not recorded",
                _device_words(facts),
                data["sha256"][:12] if data else "not recorded",
            ]
        )
    if rows:
        blocks.append(
            Table(
                f"the runs of {sweep.dir.name}",
                ["run", "swept values", "seed", "started", "device", "data sha256"],
                rows,
            )
        )
    if sweep.runs:
        blocks.append(
            Code(sweep.runs[0].config.to_toml(), f"the settings of its first run, {sweep.runs[0].label}")
        )
    return blocks


# --- results -----------------------------------------------------------------------------------------


def results(study: Study, baseline: ReportRun | None) -> Section:
    section = Section("Results")
    runs = ranked(study.runs)
    if not runs:
        section.blocks.append(Note("no run could be read: nothing to tabulate"))
        return section
    datasets = sorted({r.summary.dataset for r in runs})
    header = [
        "",
        "run",
        "model",
        "data",
        "seed",
        "epochs",
        "val",
        "test",
        "test 95% interval",
        "test loss",
        "params",
        "tokens",
        "train s",
        "img/s",
        "Δ test",
    ]
    rows, marked = [], []
    for i, run in enumerate(runs):
        s = run.summary
        ci = interval(run)
        delta = _delta(run, baseline)
        if run is baseline:
            marked.append(i)
        data = s.dataset + (" (subset)" if "test" in run.capped else "")
        rows.append(
            [
                "baseline" if run is baseline else str(i + 1),
                s.label,
                s.model,
                data,
                str(run.seed),
                str(s.epochs),
                fmt_pct(s.best_val),
                fmt_pct(s.test_accuracy),
                f"{fmt_pct(ci[0])} - {fmt_pct(ci[1])}" if ci else "",
                "n/a" if s.test_loss is None else f"{s.test_loss:.4f}",
                fmt_int(s.parameters),
                fmt_int(s.tokens),
                fmt_seconds(s.train_seconds),
                "n/a" if s.images_per_s is None else f"{s.images_per_s:,.0f}",
                "" if delta is None else f"{100 * delta:+.2f}",
            ]
        )
    caption = (
        "Best test accuracy first. val: validation accuracy of the kept weights. The 95% interval (Wilson) "
        f"is given for test sets under {SMALL_TEST:,} images. Δ test: percentage points against the baseline"
        + (f" ({baseline.label})" if baseline else "")
        + ", for runs on its data set. (subset): a test set cut by --subset."
    )
    section.blocks.append(Table(caption, header, rows, marked, numeric=list(range(4, 15))))
    if len(datasets) > 1:
        section.blocks.append(
            Note(
                f"the runs are on {len(datasets)} data sets ({', '.join(datasets)}): "
                "compare accuracies within one"
            )
        )
    section.blocks += seed_table(runs)
    return section


def seed_groups(runs: list[ReportRun]) -> list[list[ReportRun]]:
    """Runs that differ only in seed, groups of two or more seeds, in the order of their first run."""
    return [g for g in _by_seed(runs) if len({r.seed for r in g}) > 1]


def seed_table(runs: list[ReportRun]) -> list:
    rows = []
    for group in seed_groups(runs):
        scored = [r.summary.test_accuracy for r in group if r.summary.test_accuracy is not None]
        if not scored:
            continue
        mean, std = stats.mean_std(scored)
        rows.append(
            [
                group[0].summary.model,
                group[0].summary.dataset,
                ", ".join(str(r.seed) for r in group),
                fmt_pct(mean),
                "" if std is None else f"{100 * std:.2f}",
                f"{fmt_pct(min(scored))} - {fmt_pct(max(scored))}",
            ]
        )
    if not rows:
        return []
    return [
        Table(
            "Runs that differ only in seed: mean test accuracy, its sample standard deviation (points) and "
            "range over the seeds that finished",
            ["model", "data", "seeds", "mean test", "std", "range"],
            rows,
            numeric=[3, 4],
        )
    ]


# --- curves ------------------------------------------------------------------------------------------


KEYS = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")


def curves(study: Study) -> Section:
    section = Section("Curves")
    lone = [r for r in study.runs if r.sweep is None and r.summary.history]
    if lone:
        section.blocks += _curve_figure("curves", lone, "the runs")
    for sweep in study.sweeps:
        scored = ranked([r for r in sweep.runs if r.summary.history])
        if scored:
            section.blocks += _curve_figure(f"curves-{sweep.dir.name}", scored, f"sweep {sweep.dir.name}")
    return section


def _curve_figure(name: str, runs: list[ReportRun], what: str) -> list:
    series: list[plots.Curve] = []
    for group in _by_seed(runs):
        if len(group) == 1:
            history = group[0].summary.history
            series.append(
                plots.Curve(
                    group[0].label,
                    [m["epoch"] for m in history],
                    {k: [m.get(k) for m in history] for k in KEYS},
                )
            )
            continue
        bands = {k: stats.seed_bands([[m.get(k) for m in r.summary.history] for r in group]) for k in KEYS}
        first = bands["val_accuracy"]
        label = f"{group[0].summary.model}, mean of {len(group)} seeds"
        series.append(
            plots.Curve(label, first.epochs, {k: b.mean for k, b in bands.items()}, bands, len(group))
        )
    shown = series[: plots.MAX_CURVES]
    blocks: list = [
        Figure(
            name,
            plots.curves_png(shown),
            f"Loss and accuracy per epoch of {what}: train dashed, validation solid. Runs that differ only "
            "in seed are drawn as their mean with the band from their lowest to their highest value.",
        )
    ]
    if len(series) > len(shown):
        blocks.append(
            Note(f"{len(series) - len(shown)} more runs of {what} are not drawn (the best {len(shown)} are)")
        )
    return blocks


def _by_seed(runs: list[ReportRun]) -> list[list[ReportRun]]:
    """Runs grouped by their settings other than the seed, within the runs given alone and within each
    sweep: a lone run that repeats a sweep's run (same settings, same seed) is not a third seed."""
    groups: dict[tuple[str, str], list[ReportRun]] = {}
    for run in runs:
        groups.setdefault((str(run.sweep), run.seedless), []).append(run)
    return list(groups.values())


# --- sweeps ------------------------------------------------------------------------------------------


def sweeps(study: Study) -> Section:
    section = Section("Sweeps")
    for sweep in study.sweeps:
        section.blocks.append(Heading(f"sweep {sweep.dir.name}"))
        scored = [r for r in sweep.runs if r.summary.test_accuracy is not None]
        if not scored:
            section.blocks.append(Note(f"{sweep.dir} has no finished run to chart yet"))
            continue
        options = [a for a in sweep.axes if a != "seed"]
        panels = []
        for option in options:
            points = [_point(r, fmt_value(r.values.get(option))) for r in scored]
            means = []
            for value in dict.fromkeys(p.label for p in points):
                mine = [p.accuracy for p in points if p.label == value]
                means.append(plots.Point(value, sum(mine) / len(mine)))
            panels.append((option, points, means))
        if panels:
            section.blocks.append(
                Figure(
                    f"options-{sweep.dir.name}",
                    plots.options_png(panels),
                    "Test accuracy against each swept option: a dot per run with its test set's 95% interval "
                    "where that set is small, the bar the mean at each value. The axis spans at least "
                    f"{100 * plots.MIN_SPAN:.0f} points, so that noise does not look like a trend.",
                )
            )
        section.blocks += _cost(sweep, scored)
        section.blocks += _importance(sweep, scored, options)
    return section


def _point(run: ReportRun, label: str) -> plots.Point:
    ci = interval(run)
    return plots.Point(label, run.summary.test_accuracy, *(ci or (None, None)))


def _cost(sweep: ReportSweep, scored: list[ReportRun]) -> list:
    points = [
        (r.label, r.summary.test_accuracy, r.summary.train_seconds, r.summary.parameters) for r in scored
    ]
    front = {}
    for key, index in (("seconds", 2), ("parameters", 3)):
        known = [i for i, p in enumerate(points) if p[index] is not None]
        chosen = stats.pareto_front([(points[i][index], points[i][1]) for i in known])
        front[key] = [known[i] for i in chosen]
    blocks: list = [
        Figure(
            f"cost-{sweep.dir.name}",
            plots.cost_png(points, front),
            "Test accuracy against train time and against parameters (log axes where they span more than "
            "tenfold). Ringed and joined: the runs "
            "on the best-accuracy-for-cost front (no other run is both cheaper and more accurate).",
        )
    ]
    rows = []
    for i in front["seconds"]:
        run = scored[i]
        rows.append(
            [
                run.label,
                describe(run.values),
                fmt_pct(run.summary.test_accuracy),
                fmt_seconds(run.summary.train_seconds),
                fmt_int(run.summary.parameters),
            ]
        )
    if rows:
        blocks.append(
            Table(
                "The runs on the accuracy-for-train-time front, cheapest first",
                ["run", "values", "test", "train s", "params"],
                rows,
                numeric=[2, 3, 4],
            )
        )
    return blocks


def _importance(sweep: ReportSweep, scored: list[ReportRun], options: list[str]) -> list:
    if not options:
        return []
    if len(scored) < 3:
        return [Note("which options mattered needs 3 or more finished runs")]
    axes = options + (["seed"] if "seed" in sweep.axes else [])
    shares = stats.variance_shares(
        [{a: r.values.get(a) for a in axes} for r in scored], [r.summary.test_accuracy for r in scored]
    )
    rows = [
        [option + (" (run-to-run noise)" if option == "seed" else ""), f"{100 * shares[option]:.1f}%"]
        for option in sorted(axes, key=lambda o: -shares[o])
    ]
    return [
        Text(
            f"Which options mattered: the share of the test accuracy's variance over the {len(scored)} "
            f"finished runs that each option explains. Method: {stats.VARIANCE_METHOD}"
        ),
        Table("Variance of the test accuracy explained", ["option", "share"], rows, numeric=[1]),
    ]


# --- what the ViTs look at ---------------------------------------------------------------------------


def look(study: Study, options: Options) -> Section:
    section = Section("What the ViTs look at")
    viewed = [r for r in ranked([r for r in study.runs if r.sweep is None]) if _finished_vit(r)]
    viewed += [s.best for s in study.sweeps if s.best is not None and _finished_vit(s.best)]
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


def _inspect(run: ReportRun, options: Options, out: Path) -> list:

    try:
        report = inspect_figures.draw_report(
            inspect_checkpoint(
                run.summary.run_dir,
                figures=["distance", "positions"],
                images=INSPECT_IMAGES,
                data_dir=options.data_dir,
                device=options.device,
            ),
            out,
        )
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
        report = inspect_figures.draw_report(
            inspect_checkpoint(
                vit.summary.run_dir,
                against=cnn.summary.run_dir,
                images=AGAINST_IMAGES,
                data_dir=options.data_dir,
                device=options.device,
            ),
            out,
        )
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


# --- where it stands ---------------------------------------------------------------------------------


def where_it_stands(study: Study) -> Section:
    section = Section("Where it stands")
    for dataset in sorted({r.summary.dataset for r in study.runs}):
        references = references_for(dataset)
        mine = [
            r
            for r in ranked(study.runs)
            if r.summary.dataset == dataset and r.summary.test_accuracy is not None
        ]
        if not references:
            section.blocks.append(Note(f"vitcli ships no reference figures for {dataset}"))
            continue
        if not mine:
            continue
        entries: list[tuple[float, list[str], bool]] = []
        for r in mine[:10]:
            facts = r.provenance or {}
            hardware = facts.get("device_name") or "not recorded"
            if facts.get("threads") and str(facts.get("device", "")).startswith("cpu"):
                hardware += f", {facts['threads']} thread(s)"
            entries.append(
                (
                    r.summary.test_accuracy,
                    [
                        r.label,
                        r.summary.model,
                        fmt_pct(r.summary.test_accuracy),
                        str(r.summary.epochs),
                        "no",
                        hardware + f", {fmt_seconds(r.summary.train_seconds)} s",
                        "this report",
                    ],
                    True,
                )
            )
        for ref in references:
            entries.append(
                (
                    ref.test_accuracy,
                    [
                        ref.model,
                        ref.family,
                        fmt_pct(ref.test_accuracy),
                        "" if ref.epochs is None else str(ref.epochs),
                        "yes" if ref.pretrained else "no",
                        ref.hardware + (f", {ref.time}" if ref.time else ""),
                        f"{ref.source} ({ref.kind})" + (f"; {ref.note}" if ref.note else ""),
                    ],
                    False,
                )
            )
        entries.sort(key=lambda e: -e[0])
        section.blocks.append(
            Table(
                f"{dataset}: this report's runs (bold; its best 10) among reference test accuracies, "
                "with the "
                "epochs and hardware behind each: a figure from 300 GPU epochs is not a CPU budget's",
                ["run or model", "model", "test", "epochs", "pretrained", "hardware, time", "source"],
                [e[1] for e in entries],
                marked=[i for i, e in enumerate(entries) if e[2]],
                numeric=[2, 3],
            )
        )
    return section


def numbers_json(report: Report) -> str:
    return json.dumps(
        {
            "runs": report.numbers,
            "sweeps": [{"sweep": str(s.dir), "axes": s.axes, "rows": s.rows} for s in report.study.sweeps],
            "baseline": report.baseline.label if report.baseline else None,
            "notes": report.study.notes,
        }
    )
