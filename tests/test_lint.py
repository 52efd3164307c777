"""The code stays plain: ruff is clean (pyproject.toml's [tool.ruff]), modules stay under about 400 lines
and functions under about 60. They run with the tests, so the README's test command checks them too."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE = (
    sorted((ROOT / "src").rglob("*.py"))
    + sorted((ROOT / "benchmarks").glob("*.py"))
    + sorted((ROOT / "tests").glob("*.py"))
)
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def test_ruff_is_clean():
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name} is two ideas: split it"
    for node, length in function_bodies(ast.parse(text)):
        assert length <= MAX_FUNCTION_LINES, f"{node.name} (line {node.lineno}) has a {length}-line body"


def function_bodies(tree: ast.AST):
    """(function, lines from its first statement to its end). The signature and docstring do not count: a
    Typer command declares its options in its signature, which is a list, not logic."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if len(body) > 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                body = body[1:]
            yield node, node.end_lineno - body[0].lineno + 1


def test_the_size_check_sees_a_long_function():
    long = "def f():\n    '''doc'''\n" + "    x = 1\n" * 61
    [(node, length)] = list(function_bodies(ast.parse(long)))
    assert node.name == "f" and length == 61
