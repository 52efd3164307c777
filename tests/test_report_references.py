"""The reference figures `vitcli report` places runs against (lab/reporting/references.toml): the shipped file
loads, every figure says where it is from and what it cost, vitcli's own rows agree with what
docs/small-data.md states, and a malformed entry is named in the error."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from vitcli.errors import ConfigError
from vitcli.lab.reporting.references import (
    FAMILIES,
    KINDS,
    NOT_STATED,
    load_references,
    references_for,
)
from vitcli.settings.choices import DATASETS

REPO = Path(__file__).resolve().parents[1]
SMALL_DATA = REPO / "docs" / "small-data.md"


def docs_percent(text: str) -> float:
    """The first percentage in `text` as a fraction ("99.07-99.08%" gives 0.9907)."""
    match = re.search(r"(\d+(?:\.\d+)?)(?:-\d+(?:\.\d+)?)?%", text)
    assert match, text
    return float(match.group(1)) / 100


def preset_row(name: str) -> tuple[str, str]:
    """The presets table's row for `name` in docs/small-data.md: its "what" and "measured" cells."""
    for line in SMALL_DATA.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"| `{name}` |"):
            _, _, what, measured, _ = line.split("|")
            return what, measured
    raise AssertionError(f"docs/small-data.md's presets table has no row for {name}")


# --- the shipped file -----------------------------------------------------------------------------------


def test_the_shipped_figures_load_and_each_says_where_it_is_from_and_what_it_cost():
    references = load_references()
    assert len(references) >= 10
    for ref in references:
        assert ref.source.strip() and ref.url.strip(), ref
        assert 0 < ref.test_accuracy <= 1, ref
        assert ref.dataset in DATASETS and ref.family in FAMILIES and ref.kind in KINDS, ref
        assert ref.hardware.strip(), ref  # NOT_STATED where the source does not say
        assert ref.epochs is None or ref.epochs >= 1
        assert not ref.pretrained  # the page compares runs trained from scratch
        if ref.kind == "published":
            assert ref.url.startswith("https://"), ref
        else:  # vitcli's own figures and the teaching reports' point into vitcli's docs
            assert (REPO / ref.url.split("#")[0]).is_file(), ref
    assert {ref.dataset for ref in references} == {"mnist", "cifar10"}
    assert {ref.kind for ref in references} == set(KINDS)
    assert {ref.family for ref in references} == set(FAMILIES)


def test_the_list_is_cached_but_a_caller_cannot_change_it():
    first = load_references()
    first.clear()
    assert load_references() and load_references() == load_references()


def test_references_for_one_data_set_and_none_for_a_folder():
    mnist = references_for("mnist")
    assert mnist and all(ref.dataset == "mnist" for ref in mnist)
    assert {ref.model for ref in references_for("cifar10")} >= {"cifar10-cct", "CCT-7/3x1", "airbench94"}
    assert references_for("folder:cifar10-jpg") == [] and references_for("svhn") == []


def test_a_label_carries_the_figure_with_its_terms():
    cct = next(ref for ref in references_for("cifar10") if ref.model == "CCT-7/3x1" and ref.epochs == 200)
    assert cct.label == "CCT-7/3x1 94.78% (200 epochs, hardware not stated)"
    teaching = next(ref for ref in references_for("cifar10") if ref.kind == "teaching-report")
    assert "epochs not stated" in teaching.label and f"hardware {NOT_STATED}" in teaching.label
    assert teaching.percent == "56%"
    airbench = next(ref for ref in references_for("cifar10") if ref.model == "airbench94")
    assert airbench.label.endswith("(epochs not stated, 1 A100, 3.83 s)")


def test_the_module_imports_no_torch():
    code = (
        "import sys, vitcli.lab.reporting.references as r; r.load_references(); "
        + "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


# --- the figures against vitcli's docs ------------------------------------------------------------------


def test_the_teaching_reports_figures_are_the_ones_the_docs_quote():
    text = " ".join(SMALL_DATA.read_text(encoding="utf-8").split())  # one line, wrapped or not
    quote = re.search(
        r"teaching reports measure (\d+)% and (\d+)% on CIFAR-10 .*? against (\d+)% for a CNN", text
    )
    assert quote, "docs/small-data.md no longer quotes the teaching reports' figures"
    vits, cnn = sorted(int(quote.group(i)) / 100 for i in (1, 2)), int(quote.group(3)) / 100
    rows = [ref for ref in load_references() if ref.kind == "teaching-report"]
    assert all(ref.dataset == "cifar10" and ref.hardware == NOT_STATED for ref in rows)
    assert sorted(ref.test_accuracy for ref in rows if ref.family == "vit") == vits
    assert [ref.test_accuracy for ref in rows if ref.family == "cnn"] == [cnn]


def test_vitcli_rows_match_the_presets_table_in_the_docs():
    rows = {ref.model: ref for ref in load_references() if ref.kind == "vitcli"}
    assert set(rows) >= {"mnist-classic", "mnist-cct", "cifar10-cct"}
    docs = SMALL_DATA.read_text(encoding="utf-8")
    for name, ref in rows.items():
        what, measured = preset_row(name)
        assert ref.test_accuracy == pytest.approx(docs_percent(measured)), name
        assert f"{ref.epochs} epochs" in what, name
        assert ref.hardware in measured and ref.time.split()[0] in measured, name
        assert ref.dataset == ("mnist" if "MNIST" in measured else "cifar10"), name
        if ref.parameters is not None:  # from the equal-budget tables, formatted as the docs print them
            assert f"{ref.parameters:,}" in docs, name


# --- a malformed file -----------------------------------------------------------------------------------

ENTRY = """
[[reference]]
dataset = "cifar10"
model = "CCT-7/3x1"
family = "vit-conv-tokenizer"
test_accuracy = 0.9478
epochs = 200
pretrained = false
hardware = "not stated"
kind = "published"
source = "Hassani et al. 2021"
url = "https://github.com/SHI-Labs/Compact-Transformers"
"""


def test_a_file_given_by_path_is_read(tmp_path):
    path = tmp_path / "refs.toml"
    path.write_text(ENTRY + ENTRY.replace("CCT-7/3x1", "CCT-2/3x2").replace("0.9478", "1"))
    first, second = load_references(path)
    assert (first.model, first.parameters, first.time, first.note) == ("CCT-7/3x1", None, None, None)
    assert second.test_accuracy == 1.0 and isinstance(second.test_accuracy, float)


@pytest.mark.parametrize(
    "change, words",
    [
        (("epochs = 200", "epoch = 200"), ["unknown key 'epoch'", "did you mean epochs?"]),
        (('url = "https://github.com/SHI-Labs/Compact-Transformers"\n', ""), ["missing url"]),
        (("0.9478", "94.78"), ["test_accuracy must be a fraction", "94.78"]),
        (("0.9478", "0"), ["test_accuracy must be a fraction"]),
        (("0.9478", '"94.78%"'), ["test_accuracy must be a fraction"]),
        (('"cifar10"', '"cifar-10"'), ["dataset 'cifar-10' is not known", "did you mean cifar10?"]),
        (('"cifar10"', '"folder:cifar10-jpg"'), ["dataset 'folder:cifar10-jpg' is not known"]),
        (('"vit-conv-tokenizer"', '"cct"'), ["family 'cct' is not known"]),
        (('"published"', '"paper"'), ["kind 'paper' is not known"]),
        (("pretrained = false", 'pretrained = "no"'), ["pretrained must be true or false"]),
        (("epochs = 200", "epochs = 0"), ["epochs must be a whole number"]),
        (("epochs = 200", "epochs = true"), ["epochs must be a whole number"]),
        (('hardware = "not stated"', 'hardware = ""'), ["hardware must be a non-empty string"]),
    ],
)
def test_a_malformed_entry_is_named_in_a_clear_error(tmp_path, change, words):
    path = tmp_path / "refs.toml"
    path.write_text(ENTRY + ENTRY.replace(*change))
    with pytest.raises(ConfigError) as raised:
        load_references(path)
    message = str(raised.value)
    assert str(path) in message and "[[reference]] 2 (CCT-7/3x1)" in message, message
    for word in words:
        assert word in message, message


def test_a_file_that_is_not_toml_or_not_references_says_so(tmp_path):
    path = tmp_path / "refs.toml"
    path.write_text("[[reference]\n")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_references(path)
    path.write_text("[references]\nmodel = 'x'\n")
    with pytest.raises(ConfigError, match="unknown table 'references'"):
        load_references(path)
    path.write_text('reference = "x"\n')
    with pytest.raises(ConfigError, match=r"must be \[\[reference\]\] tables"):
        load_references(path)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_references(tmp_path / "missing.toml")
