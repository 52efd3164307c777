"""The report as Markdown and its pictures, for pasting into a lab report: `report.md` beside one PNG per
figure, linked by relative paths so that the folder moves as one."""

from __future__ import annotations

from vitcli.lab.reporting.document import Code, Document, Figure, Heading, Note, Table, Text

MARKDOWN = "report.md"


MARK = "<!-- made by vitcli report -->"


def render_markdown(document: Document) -> tuple[str, dict[str, bytes]]:
    """The Markdown text and the pictures it links to (file name -> PNG)."""
    pictures: dict[str, bytes] = {}
    # The comment (not shown by any Markdown viewer) marks the file as one `--overwrite` may replace.
    lines = [MARK, f"# {document.title}", "", *(f"{line}  " for line in document.lead), ""]
    for section in document.sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            lines += _block(block, pictures) + [""]
    return "\n".join(lines).rstrip() + "\n", pictures


def _block(block, pictures: dict[str, bytes]) -> list[str]:
    if isinstance(block, Heading):
        return [f"### {block.text}"]
    if isinstance(block, Text):
        return [_inline(block.text)]
    if isinstance(block, Note):
        return [f"> {_inline(block.text)}"]
    if isinstance(block, Code):
        return ["```", block.text.rstrip("\n"), "```"] + (
            [f"*{_inline(block.caption)}*"] if block.caption else []
        )
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        name = _unique(f"{block.name}.png", pictures)
        pictures[name] = block.png
        return [f"![{_inline(block.caption)}]({name})", "", f"*{_inline(block.caption)}*"]
    raise TypeError(f"not a block of a report: {block!r}")


def _table(table: Table) -> list[str]:
    def row(cells: list[str], bold: bool = False) -> str:
        texts = [_cell(c) for c in cells]
        if bold:
            texts = [f"**{t}**" if t else t for t in texts]
        return "| " + " | ".join(texts) + " |"

    rule = "| " + " | ".join("---:" if i in table.numeric else "---" for i in range(len(table.header))) + " |"
    return [
        f"*{_inline(table.caption)}*",
        "",
        row(table.header),
        rule,
        *(row(cells, r in table.marked) for r, cells in enumerate(table.rows)),
    ]


def _cell(text: str) -> str:
    return _inline(text).replace("|", "\\|").replace("\n", " ")


def _inline(text: str) -> str:
    # Markdown would read these as emphasis or markup; the page's text is plain.
    for char in ("\\", "*", "_", "`", "<", "["):
        text = text.replace(char, "\\" + char)
    return text


def _unique(name: str, taken: dict[str, bytes]) -> str:
    stem, n = name[: -len(".png")], 2
    while name in taken:
        name, n = f"{stem}-{n}.png", n + 1
    return name
