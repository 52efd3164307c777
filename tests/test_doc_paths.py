"""The docs' example commands use placeholder paths (DATA_DIR, CIFAR10_DIR), never a folder of the machine
they were measured on."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINE_PATHS = ("/work/", "/tmp/", "../shared")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def machine_paths(path: Path, root: Path = ROOT) -> list[str]:
    """'file:line: text' for each code-block line of `path` that names a folder of a machine."""
    found = []
    text = path.read_text(encoding="utf-8")
    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start()) + 1
        for offset, line in enumerate(block.group(0).splitlines()):
            if any(p in line for p in MACHINE_PATHS):
                found.append(f"{path.relative_to(root)}:{first + offset}: {line.strip()}")
    return found


def test_doc_code_blocks_name_no_machine_paths():
    documents = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
    found = [hit for document in documents for hit in machine_paths(document)]
    assert not found, "use placeholders (DATA_DIR, CIFAR10_DIR, RUNS_DIR):\n" + "\n".join(found)


def test_the_check_finds_a_machine_path_in_a_code_block(tmp_path):
    page = tmp_path / "page.md"
    command = "vitcli train --data-dir /work/shared/data"
    page.write_text(f"Prose may say ../shared/data.\n\n```bash\n{command}\n```\n\n```\nok\n```\n")
    assert machine_paths(page, tmp_path) == [f"page.md:4: {command}"]
