"""Evaluating on another data set pairs classes by name, never silently by position.

A model trained on MNIST (whose classes torchvision names "0 - zero" ... "9 - nine") is evaluated on image
folders of the same digits, through the real loaders: folders named as MNIST names them, by the digit,
by the word (which ImageFolder sorts into another order), and by names that differ.
"""

import json

import pytest
import torch
from cli_helpers import run
from fakedata import write_image_folder

from vitcli.data import load_splits
from vitcli.errors import ConfigError
from vitcli.lab.class_matching import match_classes, same_class
from vitcli.settings.config import DataConfig

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
MNIST = [f"{i} - {word}" for i, word in enumerate(WORDS)]


# --- the matching alone ------------------------------------------------------------------------------


def test_the_same_names_in_the_same_order_are_the_identity():
    matched = match_classes(["cat", "dog", "fish"], ["cat", "dog", "fish"])
    assert matched.mapping == (0, 1, 2) and matched.by == "name" and matched.note is None


def test_the_same_names_in_another_order_are_a_permutation_by_name():
    matched = match_classes(["cat", "dog", "fish"], ["fish", "cat", "dog"])
    assert matched.mapping == (2, 0, 1)  # the data's label 0 (fish) is the model's output 2
    assert matched.data_classes == ("cat", "dog", "fish") and "another order" in matched.note
    assert matched.apply(torch.tensor([0, 1, 2, 0])).tolist() == [2, 0, 1, 2]


def test_mnist_names_match_a_folder_named_by_digit_or_by_word():
    assert match_classes(MNIST, [str(i) for i in range(10)]).mapping == tuple(range(10))
    by_word = match_classes(MNIST, sorted(WORDS))  # eight, five, four, nine, one, ...
    assert by_word.mapping == tuple(WORDS.index(w) for w in sorted(WORDS))
    assert by_word.data_classes == tuple(WORDS)
    assert "eight is 8 - eight" in by_word.note
    assert match_classes([str(i) for i in range(10)], MNIST).mapping == tuple(range(10))  # either side


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("Cat", " cat ", True),
        ("3 - three", "3", True),
        ("3 - three", "Three", True),
        ("3 - three", "3 - three", True),
        ("3 - three", "3 - drei", False),  # both spelt out: the whole name must agree
        ("3 - three", "three - 3", False),
        ("3 - three", "4", False),
        ("T-shirt/top", "T-shirt", False),  # a hyphen is not the " - " form
        ("cat", "cats", False),
    ],
)
def test_what_counts_as_the_same_name(a, b, same):
    assert same_class(a, b) is same and same_class(b, a) is same


def test_names_that_differ_are_refused_with_one_line_naming_them():
    with pytest.raises(ConfigError) as refused:
        match_classes(["cat", "dog", "fish"], ["cat", "dgo", "fish"], data_name="folder:pets")
    message = str(refused.value)
    assert "\n" not in message
    assert message == (
        "the classes of folder:pets are not the checkpoint's; names without a match: the checkpoint's dog "
        "and the data's dgo; rename the data's class folders to the checkpoint's names, or pass "
        "--match-by-position to pair classes by position"
    )


def test_a_name_matching_two_classes_is_not_guessed():
    with pytest.raises(ConfigError, match="the data's three"):
        match_classes(["3 - three", "three"], ["three", "x"])


def test_by_position_pairs_in_order_and_says_so():
    matched = match_classes(MNIST, list("abcdefghij"), by_position=True)
    assert matched.mapping == tuple(range(10)) and matched.by == "position"
    assert "the data to the checkpoint: a is 0 - zero, b is 1 - one" in matched.note
    swapped = match_classes(["cat", "dog"], ["dog", "cat"], by_position=True)
    assert swapped.mapping == (0, 1) and "by name they would pair differently" in swapped.note


def test_different_counts_are_refused_even_by_position():
    with pytest.raises(ConfigError, match="2 classes but the data has 3"):
        match_classes(["a", "b"], ["a", "b", "c"], by_position=True)


# --- the commands ------------------------------------------------------------------------------------


@pytest.fixture
def mnist_model(tmp_path, mnist_dir):
    trained = run(
        "train",
        "--data-dir",
        mnist_dir,
        "--epochs",
        8,
        "--no-augment",
        "--batch-size",
        64,
        "--device",
        "cpu",
        "--embed-dim",
        16,
        "--out",
        tmp_path / "runs",
        "--name",
        "m",
    )
    assert trained.exit_code == 0, trained.output
    return tmp_path / "runs" / "m"


def digits(tmp_path, names):
    """A 28x28 gray image folder of the fake MNIST's digits, digit k in the folder names[k]."""
    return write_image_folder(tmp_path / "digits" / names[0], classes=names, size=(28, 28), mode="L")


def evaluate(model, folder, *extra):
    result = run("eval", model, "--dataset", f"folder:{folder}", "--device", "cpu", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.stderr


def test_a_folder_in_another_order_evaluates_as_in_the_model_s_order(tmp_path, mnist_model):
    as_trained, note = evaluate(mnist_model, digits(tmp_path, MNIST))
    assert note == "" and as_trained["accuracy"] > 0.5  # the task is easy: the mapping matters
    for names in (WORDS, [str(i) for i in range(10)]):
        other, note = evaluate(mnist_model, digits(tmp_path, names))
        assert other["accuracy"] == as_trained["accuracy"] and other["confusion"] == as_trained["confusion"]
        assert other["classes"] == MNIST and other["data_classes"] == names and other["matched_by"] == "name"
        assert note.startswith("note: classes matched by name")
    # What happened before: pairing the sorted words by position scores the same model near zero.
    scrambled, note = evaluate(mnist_model, digits(tmp_path, WORDS), "--match-by-position")
    assert scrambled["accuracy"] < 0.2 and "by name they would pair differently" in note


def test_names_that_differ_are_refused_in_one_line(tmp_path, mnist_model):
    folder = digits(tmp_path, [f"class{k}" for k in range(10)])
    result = run("eval", mnist_model, "--dataset", f"folder:{folder}", "--device", "cpu")
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: the classes of folder:{folder} are not")
    assert "the checkpoint's 0 - zero, 1 - one, 2 - two, 3 - three, ... (10 in all)" in lines[0]
    assert "the data's class0, class1, class2, class3, ... (10 in all)" in lines[0]
    assert "--match-by-position" in lines[0]


def test_match_by_position_evaluates_names_that_differ(tmp_path, mnist_model):
    folder = digits(tmp_path, [f"class{k}" for k in range(10)])
    report, note = evaluate(mnist_model, folder, "--match-by-position")
    as_trained, _ = evaluate(mnist_model, digits(tmp_path, MNIST))
    assert report["accuracy"] == as_trained["accuracy"] and report["matched_by"] == "position"
    assert report["classes"] == MNIST and report["data_classes"][0] == "class0"
    assert note.startswith("note: classes matched by position (--match-by-position)")


def test_attention_on_a_folder_labels_images_with_the_model_s_classes(tmp_path, mnist_model):
    folder = digits(tmp_path, WORDS)
    indices = list(range(0, 60, 7))
    out = tmp_path / "pictures"
    args = ["attention", mnist_model, "--dataset", f"folder:{folder}", "--device", "cpu", "--out", out]
    result = run(*args, "--index", *indices, "--json")
    assert result.exit_code == 0, result.output
    data = load_splits(DataConfig(dataset=f"folder:{folder}"))
    expected = [WORDS.index(data.info.classes[int(data.test.labels[i])]) for i in indices]
    assert [image["label"] for image in json.loads(result.stdout)["images"]] == expected
    assert data.info.classes[0] == "eight"  # sorted: the positions differ, so the test tells them apart
    shown = run(*args, "--index", 3)
    digit = WORDS.index(data.info.classes[int(data.test.labels[3])])
    assert f"true {MNIST[digit]}" in shown.stdout


def test_attention_refuses_names_that_differ_and_writes_nothing(tmp_path, mnist_model):
    folder = digits(tmp_path, [f"class{k}" for k in range(10)])
    out = tmp_path / "pictures"
    args = ["attention", mnist_model, "--dataset", f"folder:{folder}", "--device", "cpu", "--out", out]
    result = run(*args)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1
    assert "names without a match" in result.stderr and not out.exists()
    allowed = run(*args, "--match-by-position")
    assert allowed.exit_code == 0, allowed.output
    assert (out / "test-0.png").is_file() and "matched by position" in allowed.stderr


def test_two_checkpoints_whose_classes_differ_are_named_as_checkpoints_not_as_data():
    """`inspect --against`: the message said "the classes of the first checkpoint are not the
    checkpoint's"; it names both models now, and gives no advice to rename data folders."""
    from vitcli.errors import ConfigError
    from vitcli.lab.class_matching import match_classes

    with pytest.raises(ConfigError) as raised:
        match_classes(
            ["cat", "dog"], ["cat", "fox"], False, "the inspected checkpoint", "--against b/model.safetensors"
        )
    said = str(raised.value)
    assert said.startswith("the classes of the inspected checkpoint are not --against b/model.safetensors's")
    assert "--against b/model.safetensors's dog and the inspected checkpoint's fox" in said
    assert "rename" not in said and "pass --match-by-position" in said
    with pytest.raises(ConfigError, match="compare two models of the same classes"):
        match_classes(["a", "b", "c"], ["a", "b"], False, "the inspected checkpoint", "--against x")
