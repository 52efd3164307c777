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
from dataclasses import dataclass, field
from typing import Any

from vitcli.lab.reporting.document import Document, Note, Section
from vitcli.lab.reporting.ranking import choose_baseline, numbers
from vitcli.lab.reporting.report_options import Options
from vitcli.lab.reporting.results_section import curves, results
from vitcli.lab.reporting.run_facts import what_was_run
from vitcli.lab.reporting.standing_section import where_it_stands
from vitcli.lab.reporting.study import ReportRun, Study
from vitcli.lab.reporting.sweep_section import sweeps
from vitcli.lab.reporting.vit_section import look
from vitcli.runtime.version import __version__


@dataclass
class Report:
    document: Document
    study: Study
    baseline: ReportRun | None
    numbers: dict[str, Any] = field(default_factory=dict)  # `numbers`: what --json prints


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
    return Report(document, study, baseline, numbers(study, baseline))
