"""What `vitcli attention` writes and prints: pictures that are never written over unasked, and previews
that keep their colour in a pipe."""

import re

from cli_helpers import run
from PIL import Image

COLOUR = re.compile(r"\x1b\[[0-9;]*[34]8;[25];")  # a 256-colour or 24-bit foreground or background


def test_preview_asked_for_in_a_pipe_is_in_colour_or_said_to_need_it(tmp_path, mnist_run, monkeypatch):
    """Half-block pictures are nothing but colour: --preview into a pipe keeps the colour (`| less -R`);
    under NO_COLOR one note says why they are left out, instead of blank blocks. (CliRunner's output is
    no terminal, as a pipe is not.)"""
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    coloured = run("attention", mnist_run, "--index", 0, "--preview", "--out", tmp_path / "a")
    assert coloured.exit_code == 0, coloured.output
    pictures = [line for line in coloured.stdout.splitlines() if "▀" in line]
    assert len(pictures) >= 14 and all(COLOUR.search(line) for line in pictures)  # 28 rows, two a line
    assert "test[0]: predicted" in coloured.stdout  # the lines around the pictures stay plain text

    monkeypatch.setenv("NO_COLOR", "1")
    plain = run("attention", mnist_run, "--index", 0, "--preview", "--out", tmp_path / "b")
    assert plain.exit_code == 0, plain.output
    assert "▀" not in plain.stdout and "\x1b[" not in plain.stdout
    assert "test[0]: predicted" in plain.stdout and "top classes" in plain.stdout
    [note] = [line for line in plain.stderr.splitlines() if "NO_COLOR" in line]
    assert note.startswith("note: --preview draws its pictures in colour only")

    monkeypatch.delenv("NO_COLOR")
    unasked = run("attention", mnist_run, "--index", 0, "--out", tmp_path / "c")  # not a terminal: none
    assert unasked.exit_code == 0 and "▀" not in unasked.stdout and "\x1b[" not in unasked.stdout


def test_pictures_are_replaced_only_with_overwrite_and_only_those_attention_drew(tmp_path, mnist_run):
    out = tmp_path / "p"
    assert run("attention", mnist_run, "--index", 3, 4, "--out", out).exit_code == 0
    drawn = (out / "test-3.png").read_bytes()
    again = run("attention", mnist_run, "--index", 4, 3, "--out", out)
    assert again.exit_code == 1 and " ".join(again.stderr.split()) == (
        f"error: {out / 'test-4.png'} already exists; pass --overwrite to replace it, or choose another --out"
    )
    assert (out / "test-3.png").read_bytes() == drawn  # all refused before any was drawn
    assert run("attention", mnist_run, "--index", 3, "--out", out, "--overwrite").exit_code == 0
    Image.new("RGB", (4, 4)).save(out / "test-4.png")  # the user's own picture, of the same name
    refused = run("attention", mnist_run, "--index", 4, "--out", out, "--overwrite")
    said = " ".join(refused.stderr.split())
    assert (
        refused.exit_code == 1 and "was not made by vitcli attention, so --overwrite leaves it alone" in said
    )
    with Image.open(out / "test-4.png") as png:
        assert png.size == (4, 4)
