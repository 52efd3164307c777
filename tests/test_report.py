"""`vitcli report PATH... --html FILE / --markdown DIR`: the lab report page of runs and sweeps, checked
as a file, against the numbers of `report --json`, `compare --json` and `eval --json`, and in the real
headless Chromium (tests/browser.py)."""

import json
import re
import shutil
from pathlib import Path

import pytest
from browser import Chromium, needs_chromium
from cli_helpers import run, train
from fakedata import write_mnist
from print_layout import tables_cut

from vitcli.lab.reporting.document import Table
from vitcli.lab.reporting.pages import make_report
from vitcli.lab.reporting.report_options import Options

QUICK = ("--subset", 100, "--val-size", 20, "--batch-size", 50)
SECTIONS = ("What was run", "Results", "Curves", "Sweeps", "What the ViTs look at", "Where it stands")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A ViT and a CNN (2 epochs on 100 fake digits) and a sweep of depth x seed with two invalid rows
    (a patch size that does not divide 28), under one folder, made once for this module."""
    root = tmp_path_factory.mktemp("study")
    with pytest.MonkeyPatch.context() as mp:  # as conftest's `isolated`, for the module
        mp.setenv("VITCLI_CACHE_DIR", str(root / "cache"))
        data = write_mnist(root / "data", train=200, test=50)
        for name, model in (("vit", "vit"), ("cnn", "cnn")):
            trained = train(root, data, "--epochs", 2, *QUICK, "--model", model, "--name", name)
            assert trained.exit_code == 0, trained.output
        swept = run(
            "sweep", "--data-dir", data, *QUICK, "--epochs", 2, "--device", "cpu", "--out", root / "sweeps",
            "--name", "depth", "--depth", 1, 2, "--seed", 0, 1, "--patch-size", 7, 5,
        )  # fmt: skip
        assert swept.exit_code == 0, swept.output
    yield root
    shutil.rmtree(root / "cache", ignore_errors=True)


@pytest.fixture(scope="module")
def page(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "report.html"
    result = run("report", study / "runs", study / "sweeps", "--html", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    return out


def test_the_page_is_one_self_contained_file_with_every_section(page):
    html = page.read_text()
    assert "<script" not in html.lower()
    sources = re.findall(r'\b(?:src|href)="([^"]*)"', html)
    assert sources and all(s.startswith(("data:image/png;base64,", "#")) for s in sources), sources
    assert not re.search(r"url\(|@import|https?://[^\s\"<]*\.(?:css|js|woff2?)", html)
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html
    # Every ViT shows its attention (3 test images), distance and positions; the sweep shows its best run.
    assert html.count("<figcaption>") > 10
    assert len(re.findall(r"<figcaption>[^<]*each block&#x27;s and head&#x27;s attention", html)) == 6
    assert "mean attention distance" in html and "against cnn" in html and "McNemar" in html
    assert page.stat().st_size < 5_000_000


def _row_texts(html: str) -> list[str]:
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)
    return [" ".join(re.sub(r"<[^>]+>", " ", r).split()) for r in rows]


def test_the_numbers_are_those_of_report_json_compare_json_and_eval_json(study, page):
    html = page.read_text()
    start = html.index("<caption>Best test accuracy first")
    rows = _row_texts(html[start : html.index("</table>", start)])
    numbers = run("report", study / "runs", study / "sweeps", "--json")
    assert numbers.exit_code == 0, numbers.output
    data = json.loads(numbers.stdout)
    assert len(data["runs"]) == 2 + 4 and data["baseline"] == "cnn"
    results = rows[1:]  # under the header
    assert len(results) == len(data["runs"])
    for entry, row in zip(data["runs"], results):  # best first in both
        assert row.startswith("baseline" if entry["baseline"] else "")
        assert entry["label"] in row and f"{100 * entry['test_accuracy']:.2f}%" in row
        assert f"{entry['parameters']:,}" in row and f"{entry['test_loss']:.4f}" in row
        low, high = entry["test_interval"]  # 50 test images: a small test set
        assert f"{100 * low:.2f}% - {100 * high:.2f}%" in row
    compared = json.loads(run("compare", study / "runs" / "vit", study / "runs" / "cnn", "--json",
                              "--out", study / "c.png").stdout)  # fmt: skip
    by_label = {r["label"]: r for r in data["runs"]}
    for summary in compared["runs"]:
        for key in ("test_accuracy", "test_loss", "parameters", "best_val", "train_seconds"):
            assert by_label[summary["label"]][key] == summary[key], key
    evaluated = json.loads(run("eval", study / "runs" / "vit", "--json", "--device", "cpu").stdout)
    assert evaluated["accuracy"] == by_label["vit"]["test_accuracy"]
    assert evaluated["accuracy_interval"] == by_label["vit"]["test_interval"]  # one Wilson interval
    swept = json.loads(run("report", study / "sweeps" / "depth", "--json").stdout)
    by_dir = {Path(r["run_dir"]).name: r for r in data["runs"]}
    for row in swept["runs"]:
        if row["status"] == "finished":
            assert by_dir[row["run"]]["test_accuracy"] == row["test_accuracy"]
            depth, seed = row["values"]["depth"], row["values"]["seed"]  # patch size 7 is every run's
            assert by_dir[row["run"]]["label"] == f"depth: depth={depth} seed={seed}"


def test_failed_sweep_rows_and_what_was_run_are_on_the_page(page):
    html = page.read_text()
    assert html.count("failed (invalid)") == 4  # depth x seed with --patch-size 5
    assert "<td>command</td>" in html and "sha256" in html and "fp32" in html and "torch " in html
    assert "Variance of the test accuracy explained" in html and "η²" in html
    start = html.index("<caption>Settings that differ between the runs given alone")
    differ = _row_texts(html[start : html.index("</table>", start)])
    assert differ[0] == "setting cnn vit" and "model.kind cnn vit" in differ
    assert not any(row.startswith(("run.", "data.")) for row in differ)  # same data, names are not settings


def test_markdown_is_a_folder_of_report_md_and_its_pictures_and_is_not_replaced_unasked(study, tmp_path):
    folder = tmp_path / "md"
    made = run("report", study / "runs", "--markdown", folder, "--device", "cpu")
    assert made.exit_code == 0, made.output
    text = (folder / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all((folder / link).is_file() for link in links)
    assert "## Results" in text and "| --- |" in text.replace("---:", "---")
    before = (folder / "report.md").read_bytes()
    again = run("report", study / "runs", "--markdown", folder)
    assert again.exit_code == 1 and "already exists; pass --overwrite" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1 and (folder / "report.md").read_bytes() == before
    replaced = run("report", study / "runs", "--markdown", folder, "--overwrite", "--device", "cpu")
    assert replaced.exit_code == 0, replaced.output


def test_an_existing_html_file_is_refused_before_anything_is_made(study, tmp_path):
    mine = tmp_path / "notes.html"
    mine.write_text("my notes")
    result = run("report", study / "runs", "--html", mine)
    assert result.exit_code == 1 and "already exists; pass --overwrite" in result.stderr
    assert mine.read_text() == "my notes"
    # --overwrite replaces a page the report made, never a file it did not (a checkpoint, the user's notes)
    checkpoint = next((study / "runs").glob("*/model.safetensors"))
    for path in (mine, checkpoint):
        before = path.read_bytes()
        refused = run("report", study / "runs", "--html", path, "--overwrite")
        said = " ".join(refused.stderr.split())
        assert refused.exit_code == 1
        assert "was not made by vitcli report, so --overwrite leaves it alone" in said
        assert path.read_bytes() == before


def _one_line_error(result, words):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert words in result.stderr


def test_bad_paths_give_one_line_or_a_page_that_says_what_is_missing(study, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(run("report", empty, "--html", tmp_path / "r.html"), "holds no runs")
    _one_line_error(run("report", tmp_path / "nowhere", "--html", tmp_path / "r.html"), "does not exist")
    assert not (tmp_path / "r.html").exists()

    folder = tmp_path / "runs"
    shutil.copytree(study / "runs" / "vit", folder / "vit")
    shutil.copytree(study / "runs" / "cnn", folder / "damaged")
    (folder / "damaged" / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": \n{"epoch"\n')
    (folder / "vit" / "provenance.json").write_text('{"command": "vitcli tr')  # cut short
    unborn = folder / "unborn"  # stopped before its first epoch: its config, no metrics yet
    unborn.mkdir()
    shutil.copy(study / "runs" / "vit" / "config.toml", unborn / "config.toml")
    (unborn / "metrics.jsonl").write_text("")
    out = tmp_path / "r.html"
    result = run("report", folder, "--html", out, "--device", "cpu")
    assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "<h2>What is missing</h2>" in html
    assert "damaged" in html and "metrics.jsonl is damaged" in html
    assert "unborn stopped before its first epoch" in html
    assert "provenance.json is damaged" in html

    stray = tmp_path / "stray"
    shutil.copytree(folder / "damaged", stray / "damaged")
    _one_line_error(run("report", stray, "--html", tmp_path / "s.html"), "could be read")


def test_the_python_api_builds_the_same_document_without_the_attention(study):
    report = make_report([study / "runs"], Options(look=False))
    titles = [s.title for s in report.document.sections]
    assert "What the ViTs look at" not in titles and "Results" in titles
    [results] = [t for t in report.document.tables() if t.caption.startswith("Best test accuracy first")]
    assert isinstance(results, Table) and results.rows[0][0] == "baseline" or results.rows[0][1] == "vit"


def _marker(cells: list[str], everything: str) -> str | None:
    """The longest word of a row that the whole PDF holds once. A word, because a cell that wraps is
    read out of the PDF interleaved with its neighbours' lines; once, so that finding it places the row."""
    words = sorted({w for c in cells for w in c.split() if len(w) > 3}, key=len, reverse=True)
    return next((w for w in words if everything.count(w) == 1), None)


@needs_chromium
def test_chromium_renders_the_page_with_every_picture_no_request_and_no_table_cut(study, page, tmp_path):
    with Chromium() as browser:
        shown = browser.render(page, png=tmp_path / "page.png", pdf=tmp_path / "page.pdf")
    assert shown.images == page.read_text().count("<img ") > 10
    assert shown.broken_images == [] and shown.outside_requests == []
    assert shown.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(shown.pdf_pages) > 1
    # The page's tables, as the page was made, each placed by a word of its first and of its last row.
    report = make_report([study / "runs", study / "sweeps"], Options(device="cpu"))
    everything = "".join(shown.pdf_pages)
    tables = []
    for table in report.document.tables():
        ends = [_marker(table.rows[0], everything), _marker(table.rows[-1], everything)]
        if len(table.rows) > 1 and None not in ends and ends[0] != ends[1]:
            tables.append(ends)
    # Of the results, the sweep's runs, its front, the per-class table and where it stands:
    assert len(tables) >= 4
    assert tables_cut(shown, tables) == []


def test_what_mattered_says_when_the_runs_are_not_a_full_grid():
    from types import SimpleNamespace

    from vitcli.lab.reporting.sweep_section import _importance

    def runs(values):
        return [SimpleNamespace(values=v, summary=SimpleNamespace(test_accuracy=a)) for v, a in values]

    sweep = SimpleNamespace(axes=["a", "b"])
    grid = runs(
        [({"a": 0, "b": 0}, 0.5), ({"a": 1, "b": 0}, 0.7), ({"a": 0, "b": 1}, 0.6), ({"a": 1, "b": 1}, 0.8)]
    )
    zipped = runs(
        [({"a": 0, "b": 0}, 0.5), ({"a": 1, "b": 0}, 0.7), ({"a": 0, "b": 1}, 0.6), ({"a": 1, "b": 1}, 0.8)][
            :3
        ]
    )
    full = _importance(sweep, grid, ["a", "b"])
    assert [row[1] for row in full[1].rows] == ["80.0%", "20.0%"] and len(full) == 2
    partial = _importance(sweep, zipped, ["a", "b"])
    assert "not a full grid (3 of the 4 combinations" in partial[-1].text


def test_a_folder_with_cifar10s_classes_and_size_is_placed_among_cifar10s_figures(tmp_path):
    from fakedata import write_image_folder

    from vitcli.lab.reporting.standing_section import CIFAR10_CLASSES

    for name, classes, size in (("like", CIFAR10_CLASSES, (32, 32)), ("other", ("cat", "dog"), (32, 32))):
        folder = write_image_folder(tmp_path / name, classes, size, per_class={"train": 6, "test": 2})
        trained = train(
            tmp_path, tmp_path, "--dataset", f"folder:{folder}", "--patch-size", 8, "--name", name
        )
        assert trained.exit_code == 0, trained.output
    report = make_report([tmp_path / "runs"], Options(look=False))
    [standing] = [s for s in report.document.sections if s.title == "Where it stands"]
    texts = [getattr(b, "text", getattr(b, "caption", "")) for b in standing.blocks]
    assert any("has CIFAR-10's classes and image size" in t for t in texts)
    assert any(t.startswith("cifar10: this report's runs") for t in texts)
    assert any(t == f"vitcli ships no reference figures for folder:{tmp_path / 'other'}" for t in texts)


def test_ctrl_c_at_any_moment_ends_in_one_line_exit_130_and_no_half_written_page(study, tmp_path):
    """A real SIGINT to real `vitcli report` processes: one while torch loads, one while the page is
    made. Each says one line, exits 130, and leaves no page or a whole one, and no temporary file."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "VITCLI_CACHE_DIR": str(study / "cache"), "OMP_NUM_THREADS": "1"}
    outs = [tmp_path / f"r{i}.html" for i in range(2)]
    command = [sys.executable, "-m", "vitcli", "report", str(study / "runs"), "--device", "cpu", "--html"]
    processes = [
        subprocess.Popen([*command, str(o)], env=env, stderr=subprocess.PIPE, text=True) for o in outs
    ]
    for process, after in zip(processes, (1.0, 4.0)):
        time.sleep(after - (1.0 if after > 1.0 else 0.0))
        process.send_signal(signal.SIGINT)
    for process, out in zip(processes, outs):
        stderr = process.communicate(timeout=120)[1]
        assert process.returncode == 130, stderr
        assert "Traceback" not in stderr and "interrupted: stopped; no file was half-written" in stderr
        assert len(stderr.strip().splitlines()) == 1, stderr
        assert not out.exists() or out.read_text().rstrip().endswith("</html>")
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_full_disk_is_one_line_and_leaves_no_page_and_no_temporary_file(study, small_disk):
    out = small_disk / "report.html"  # the page is hundreds of KB: it cannot fit
    result = run("report", study / "runs", "--html", out, "--device", "cpu")
    _one_line_error(result, f"cannot write {out}")
    assert "No space left on device; free space there, or choose another --html" in result.stderr
    assert list(small_disk.iterdir()) == []  # no page, whole or half, and no .report.html.*.tmp
    markdown = run("report", study / "runs", "--markdown", small_disk / "md", "--device", "cpu")
    _one_line_error(markdown, "No space left on device")
    assert not (small_disk / "md" / "report.md").exists()  # report.md comes last, after all its pictures


def test_without_html_the_runs_results_table_fits_80_columns_and_says_what_it_shows(study, monkeypatch):
    from vitcli.cli.common import console

    monkeypatch.setattr(console, "width", 80)
    result = run("report", study / "runs")
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.stdout.splitlines()) <= 80 and "…" not in result.stdout
    data = json.loads(run("report", study / "runs", "--json").stdout)
    for entry in data["runs"]:
        assert f"{100 * entry['test_accuracy']:.2f}%" in result.stdout and entry["label"] in result.stdout
    said = " ".join(result.stdout.split())
    assert "(baseline)" in said and "against the baseline (cnn)" in said and "val:" not in said
