"""What was run: each run's command, settings, seed, data (sizes, checksum), versions, device, threads,
precision, date and commit, from its provenance.json; a sweep's runs in one table."""

from __future__ import annotations

from typing import Any

from vitcli.lab.reporting.document import Code, Heading, Section, Table, Text
from vitcli.lab.reporting.study import ReportRun, ReportSweep, Study
from vitcli.sweeps.results import describe, fmt_value

MAX_COLUMNS = 8  # runs side by side in the table of the settings that differ


def what_was_run(study: Study) -> Section:
    section = Section("What was run")
    lone = [r for r in study.runs if r.sweep is None]
    section.blocks += settings_that_differ(lone)
    for run in lone:
        section.blocks += [Heading(run.label), provenance_table(run)]
        section.blocks.append(Code(run.config.to_toml(), f"{run.summary.run_dir}/config.toml"))
    for sweep in study.sweeps:
        section.blocks += sweep_provenance(sweep)
    return section


def settings_that_differ(runs: list[ReportRun]) -> list:
    """The settings in which the runs given alone differ, a column per run: what the comparison is of.
    Where and under which name a run was written are not settings of the run."""
    if len(runs) < 2:
        return []
    shown = runs[:MAX_COLUMNS]
    flat = [_flat(r.config.to_dict()) for r in shown]
    keys = sorted({k for f in flat for k in f if not k.startswith("run.")})
    rows = [
        [key, *(fmt_value(f.get(key)) for f in flat)]
        for key in keys
        if len({repr(f.get(key)) for f in flat}) > 1
    ]
    if not rows:
        return [
            Text("The runs given alone have the same settings; they differ only in where they were written.")
        ]
    caption = "Settings that differ between the runs given alone" + (
        f" (the first {MAX_COLUMNS} of {len(runs)})" if len(runs) > MAX_COLUMNS else ""
    )
    return [Table(caption, ["setting", *(r.label for r in shown)], rows)]


def _flat(settings: dict[str, Any]) -> dict[str, Any]:
    return {f"{section}.{key}": value for section, items in settings.items() for key, value in items.items()}


def provenance_table(run: ReportRun) -> Table:
    facts = run.provenance
    rows = [
        ["run directory", str(run.summary.run_dir)],
        ["model", run.summary.model],
        ["seed", str(run.seed)],
    ]
    if facts is None or "damaged" in facts:
        why = (
            "not recorded: the run was made before vitcli wrote provenance.json"
            if facts is None
            else f"provenance.json is damaged ({facts['damaged']})"
        )
        rows += [["provenance", why], ["data", _data_words(run, None)]]
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
