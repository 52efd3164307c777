"""Where it stands: each run's test accuracy among the reference figures shipped with vitcli
(references.toml), each with the epochs and hardware behind it."""

from __future__ import annotations

from vitcli.lab.reporting.document import Note, Section, Table
from vitcli.lab.reporting.ranking import fmt_seconds, ranked
from vitcli.lab.reporting.references import Reference, references_for
from vitcli.lab.reporting.study import ReportRun, Study
from vitcli.sweeps.results import fmt_pct

MINE = 10  # the report's best runs placed in the table
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def where_it_stands(study: Study) -> Section:
    section = Section("Where it stands")
    placed = {id(r): compared_with(r) for r in study.runs}
    for dataset in sorted({dataset for dataset, _ in placed.values()}):
        references = references_for(dataset)
        mine = [
            r
            for r in ranked(study.runs)
            if placed[id(r)][0] == dataset and r.summary.test_accuracy is not None
        ]
        if not references:
            section.blocks.append(Note(f"vitcli ships no reference figures for {dataset}"))
            continue
        for why in dict.fromkeys(placed[id(r)][1] for r in mine if placed[id(r)][1]):
            section.blocks.append(Note(why))
        if mine:
            section.blocks.append(_table(dataset, mine[:MINE], references))
    return section


def compared_with(run: ReportRun) -> tuple[str, str | None]:
    """The data set whose figures a run is placed among, and why when it is not the run's own: an image
    folder with CIFAR-10's classes and image size (the JPEG copy the docs use) is placed among CIFAR-10's."""
    name, data = run.summary.dataset, run.data
    shape = (data.get("channels"), data.get("height"), data.get("width"))
    if (
        name.startswith("folder:")
        and tuple(data.get("classes", ())) == CIFAR10_CLASSES
        and shape == (3, 32, 32)
    ):
        return "cifar10", (
            f"{name} has CIFAR-10's classes and image size (a copy of CIFAR-10 such as the JPEG one, or "
            "a set like CINIC-10): its runs are placed among CIFAR-10's figures"
        )
    return name, None


def _table(dataset: str, mine: list[ReportRun], references: list[Reference]) -> Table:
    entries = [(r.summary.test_accuracy, _run_row(r), True) for r in mine]
    entries += [(ref.test_accuracy, _reference_row(ref), False) for ref in references]
    entries.sort(key=lambda e: -e[0])
    return Table(
        f"{dataset}: this report's runs (bold; its best {MINE}) among reference test accuracies, with the "
        "epochs and hardware behind each: a figure from 300 GPU epochs is not a CPU budget's",
        ["run or model", "model", "test", "epochs", "pretrained", "hardware, time", "source"],
        [e[1] for e in entries],
        marked=[i for i, e in enumerate(entries) if e[2]],
        numeric=[2, 3],
    )


def _run_row(run: ReportRun) -> list[str]:
    facts = run.provenance or {}
    hardware = facts.get("device_name") or "not recorded"
    if facts.get("threads") and str(facts.get("device", "")).startswith("cpu"):
        hardware += f", {facts['threads']} thread(s)"
    s = run.summary
    return [
        run.label,
        s.model,
        fmt_pct(s.test_accuracy),
        str(s.epochs),
        "no",
        f"{hardware}, {fmt_seconds(s.train_seconds)} s",
        "this report",
    ]


def _reference_row(ref: Reference) -> list[str]:
    return [
        ref.model,
        ref.family,
        fmt_pct(ref.test_accuracy),
        "" if ref.epochs is None else str(ref.epochs),
        "yes" if ref.pretrained else "no",
        ref.hardware + (f", {ref.time}" if ref.time else ""),
        f"{ref.source} ({ref.kind})" + (f"; {ref.note}" if ref.note else ""),
    ]
