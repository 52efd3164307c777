"""The layout shows the architecture (docs/architecture.md): packages by stage, imports one way (checked by
import-linter's contracts in pyproject.toml), no import circle, no two modules of one name, the core free
of lazy imports but for heavy optional libraries, and a command line that starts without torch."""

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "vitcli"
STAGES = ("settings", "runtime", "data", "models", "training", "sweeps", "lab", "cli")

# What the core may import inside a function: a heavy library that only some commands need, or one that
# is not everywhere. Anything else is imported at the top of its module.
LAZY_ALLOWED = {
    "timm": "pretrained ViTs, drop path and EMA: only runs that use them pay for its import",
    "huggingface_hub": "timm's hub, for pretrained weights",
    "matplotlib": "pictures only",
    "submitit": "extra vitcli[slurm]",
    "onnx": "extra vitcli[onnx]",
    "onnxruntime": "extra vitcli[onnx]",
    "tensorboard": "extra vitcli[tensorboard]",
    "torchvision.transforms": "v2's import takes seconds; only runs with mixup or cutmix use it",
    "torch.distributed": "torchrun's launcher, for --nproc only",
    "resource": "not on Windows",
}


def test_lint_imports_keeps_every_contract():
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 kept, 0 broken" in done.stdout


def import_cycles(graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def test_no_import_circle_anywhere():
    graph = grimp.build_graph("vitcli", cache_dir=None)
    assert len(graph.modules) > 90  # every package has its __init__.py, so grimp sees every module
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    class Graph:
        modules = {"a", "b", "c"}

        @staticmethod
        def find_modules_directly_imported_by(module):
            return {"a": {"b"}, "b": {"a"}, "c": {"a"}}[module]

    assert import_cycles(Graph()) == [["a", "b"]]


def test_the_top_folder_is_a_picture_of_the_stages():
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= 12, entries
    assert set(STAGES) <= set(entries)
    for stage in STAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / stage / "__init__.py").read_text()))
        assert doc, f"{stage}/__init__.py says what the stage holds"
        assert stage == "cli" or "May import" in doc, f"{stage}/__init__.py says what it may import"


def test_every_folder_of_code_is_a_package():
    # Without __init__.py a folder is a namespace package: setuptools' find_packages leaves it out of the
    # wheel, and grimp (so lint-imports) does not see it.
    folders = {path.parent for path in PACKAGE.rglob("*.py")}
    assert [f for f in sorted(folders) if not (f / "__init__.py").is_file()] == []


def test_no_two_modules_share_a_name():
    stems: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.parent.name if path.name == "__init__.py" else path.stem
        if path.name == "__main__.py" or path.parent == PACKAGE:
            continue
        assert name not in stems, f"{path.relative_to(PACKAGE)} and {stems[name].relative_to(PACKAGE)}"
        stems[name] = path


def lazy_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import inside a function of `path`."""
    found = []
    for function in ast.walk(ast.parse(path.read_text())):
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    found += [(node.lineno, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    found.append((node.lineno, node.module or ""))
    return found


def is_allowed(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in LAZY_ALLOWED)


@pytest.mark.parametrize("stage", [s for s in STAGES if s != "cli"])
def test_the_core_imports_inside_functions_only_heavy_optional_libraries(stage):
    # The command line (cli/) and the package's own short API import the core when called, on purpose:
    # that is what lets `vitcli --help` start without torch.
    for path in sorted((PACKAGE / stage).rglob("*.py")):
        for line, module in lazy_imports(path):
            assert is_allowed(module), f"{path.relative_to(PACKAGE)}:{line} imports {module} in a function"


def test_the_lazy_import_check_sees_one():
    source = "def f():\n    import torch\n    from vitcli.data import load_splits\n"
    path = Path(__file__).with_name("lazy_probe.txt")
    try:
        path.write_text(source)
        assert lazy_imports(path) == [(2, "torch"), (3, "vitcli.data")]
    finally:
        path.unlink()
    assert not is_allowed("torch") and is_allowed("timm.layers") and not is_allowed("timmy")


HEAVY = ("torch", "torchvision", "timm", "numpy", "matplotlib", "safetensors", "PIL", "pydantic")


@pytest.mark.parametrize(
    "code",
    [
        "import vitcli",
        "import vitcli.cli.commands",
        # what `vitcli --help` does: every command made from its module
        "from vitcli.cli.commands import app; from typer.main import get_command; group = get_command(app)\n"
        "[group.get_command(None, name).params for name in group.list_commands(None)]",
    ],
)
def test_the_command_line_starts_without_the_core(code):
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"{code!r} imported {done.stdout.strip()}"


def test_no_code_outside_the_specs_compares_a_kind_to_a_name():
    # Capabilities, not kind names: a spec says what its model can do (settings/specs.py).
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name in ("settings",):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                sides = [node.left, *node.comparators]
                kind = any(isinstance(s, ast.Attribute) and s.attr == "kind" for s in sides)
                named = any(isinstance(s, ast.Constant) and s.value in ("vit", "cnn", "timm") for s in sides)
                assert not (kind and named), f"{path.relative_to(PACKAGE)}:{node.lineno} compares a kind"
