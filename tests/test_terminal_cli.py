"""The parser and its help: flags without `<bool>`, one boolean spelling for train, finetune and sweep,
plain usage lines, help that wraps between words, shell completion, and "did you mean" for mistyped
values."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import plain_text, run, runner
from typer.main import get_command

from vitcli.cli import app

COMMANDS = ("train", "eval", "finetune", "sweep", "report", "presets", "models", "attention", "inspect")


def help_text(*command: str) -> str:
    result = run(*command, "--help")
    assert result.exit_code == 0, result.output
    return result.stdout


def test_flags_show_no_bool_and_options_with_values_keep_their_type():
    train = help_text("train")
    assert "<bool>" not in train and "<bool>" not in help_text()
    assert "--print-config " in train and "<int>" in train and "<float>" in train and "<path>" in train
    sweep = help_text("sweep")
    assert "--dry-run  " in sweep and "<bool>  " not in sweep
    assert re.search(r"--augment +true\|false\.\.\.", sweep) and "<int>..." in sweep
    assert "<bool>" not in help_text("eval") and "<path>" in help_text("eval")


@pytest.mark.parametrize(
    "command, usage",
    [
        ("sweep", "Usage: vitcli sweep [OPTIONS]"),
        ("attention", "Usage: vitcli attention [OPTIONS] CHECKPOINT"),
        ("inspect", "Usage: vitcli inspect [OPTIONS] CHECKPOINT"),
        ("eval", "Usage: vitcli eval [OPTIONS] CHECKPOINT"),
        ("report", "Usage: vitcli report [OPTIONS] PATH..."),
    ],
)
def test_usage_lines_name_arguments_plainly(command, usage):
    text = help_text(command)
    assert usage in text and "{" not in text.splitlines()[1]


def test_the_command_list_wraps_between_words():
    listed = plain_text(help_text())
    group = get_command(app)  # its commands are made from their modules when asked for (cli/commands.py)
    for name in COMMANDS:
        doc = group.get_command(None, name).help  # every command's first paragraph is there, whole
        paragraph = " ".join(doc.split("\n\n")[0].split())
        words = paragraph.replace("[bold]", "").replace("[/]", "").split()
        assert " ".join(words) in listed, (name, paragraph)
    assert max(len(line) for line in help_text().splitlines()) <= 80


@pytest.mark.parametrize("command", ["train", "finetune"])
@pytest.mark.parametrize(
    "given, expected",
    [(["--augment", "true"], "true"), (["--augment", "false"], "false"), (["--no-augment"], "false")],
)
def test_train_and_finetune_take_switches_as_sweep_writes_them(command, given, expected):
    result = run(command, *given, "--compile", "False", "--print-config")
    assert result.exit_code == 0, result.output
    assert f"augment = {expected}" in result.stdout and "compile = false" in result.stdout


def test_sweep_takes_the_same_spellings(tmp_path, mnist_dir):
    for given, expected in ((["--augment", "true", "false"], 2), (["--no-augment"], 1), (["--augment"], 1)):
        args = ["sweep", "--data-dir", mnist_dir, "--out", tmp_path, *given, "--embed-dim", 8, "--dry-run"]
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert f"{expected} planned runs" in result.stdout


# --- shell completion -----------------------------------------------------------------------------------


VITCLI = str(Path(sys.executable).parent / "vitcli")  # the installed script, as a shell runs it


def complete(words: str) -> list[str]:
    """The candidates bash's completion function would get for the command line `words`."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_VITCLI_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = runner.invoke(app, [], env=env, prog_name="vitcli")
    assert result.exit_code == 0, result.output
    return result.stdout.split()


def test_completion_can_be_installed_and_shown():
    assert "--install-completion" in help_text() and "--show-completion" in help_text()
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    shown = subprocess.run([VITCLI, "--show-completion", "bash"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "_vitcli_completion()" in shown.stdout and "_VITCLI_COMPLETE=complete_bash" in shown.stdout


def test_completion_offers_commands_and_choices():
    assert complete("vitcli tr") == ["train"]
    assert complete("vitcli train --model ") == ["vit", "cnn"]


# --- did you mean ---------------------------------------------------------------------------------------


def test_a_mistyped_dataset_gets_the_nearest_one(tmp_path):
    result = run("train", "--dataset", "mnst", "--out", tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("error: unknown dataset 'mnst'; did you mean mnist? use one of mnist,")


@pytest.mark.parametrize(
    "toml, said",
    [
        ("[train]\nepoch = 3\n", "unknown key 'epoch'; did you mean epochs? the keys are"),
        ("[modle]\ndepth = 2\n", "unknown section [modle]; did you mean model? the sections are"),
        ('[model]\npos_embed = "sinusoid"\n', "got 'sinusoid'; did you mean sinusoidal?"),
    ],
)
def test_mistyped_config_keys_get_the_nearest_one(tmp_path, toml, said):
    (tmp_path / "c.toml").write_text(toml)
    result = run("train", "--config", tmp_path / "c.toml", "--print-config")
    assert result.exit_code == 1 and said in result.stderr and len(result.stderr.splitlines()) == 1


def test_mistyped_preset_and_grid_option(tmp_path):
    preset = run("train", "--preset", "mnist-fsat", "--print-config")
    assert preset.exit_code == 1 and "no preset 'mnist-fsat'; did you mean mnist-fast?" in preset.stderr
    (tmp_path / "g.toml").write_text("[grid]\nembed_dims = [8, 16]\n")
    grid = run("sweep", "--config", tmp_path / "g.toml", "--dry-run", "--out", tmp_path)
    assert grid.exit_code == 1 and "unknown option 'embed_dims'; did you mean embed_dim?" in grid.stderr


@pytest.mark.parametrize(
    "args, said",
    [
        (["train", "--model", "cnnn"], "'cnnn' is not one of 'vit', 'cnn'. Did you mean 'cnn'?"),
        (["train", "--tokenizer", "spt2"], "Did you mean 'spt'?"),
        (["sweep", "--tokenizer", "patch", "spt2"], "Did you mean 'spt'?"),
        (["train", "--epoch", "3"], "--epochs"),
    ],
)
def test_values_the_parser_rejects_get_the_nearest_one_and_exit_2(args, said):
    result = run(*args)
    assert result.exit_code == 2 and said in plain_text(result.output)


def test_a_choice_far_from_every_word_gets_no_guess():
    result = run("train", "--model", "resnet")
    said = plain_text(result.output)
    assert result.exit_code == 2 and "Did you mean" not in said and "'vit', 'cnn'" in said


def test_help_paragraphs_are_wrapped_to_the_terminal_not_cut_at_the_docstrings_line_breaks():
    from vitcli.cli.common import reflow

    assert reflow("One\nline.\n\nTwo\nlines.\n\n    vitcli x\n    vitcli y") == (
        "One line.\n\nTwo lines.\n\n    vitcli x\n    vitcli y"
    )
    text = help_text("eval")  # 80 columns: the docstring's second paragraph breaks after "the command"
    assert "differ, the command says which and stops" in " ".join(text.split("\n")[6:9])
    assert not any(line.rstrip().endswith("the command") for line in text.splitlines())


def every_command() -> list[tuple[str, ...]]:
    """`vitcli`, each of its commands, and each command of a group (`cache clear`), as the app lists them."""
    group = get_command(app)
    commands: list[tuple[str, ...]] = [()]
    for name in group.list_commands(None):
        commands.append((name,))
        command = group.get_command(None, name)
        commands += [(name, sub) for sub in getattr(command, "commands", {})]
    return commands


@pytest.mark.parametrize("command", every_command(), ids=lambda c: " ".join(c) or "vitcli")
def test_no_help_cell_is_cut_at_80_columns(command):
    """rich cuts a word longer than its cell with '…' (a metavar, a default, a long tag or path in a
    narrow help column): at 80 columns every cell of every command's help is whole."""
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert not [line for line in lines if "…" in line], "\n".join(lines)
    assert max(len(line) for line in lines) <= 80
