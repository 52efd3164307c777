"""The page as data: sections of text, tables, figures and notes, that `html_page` and `markdown_page`
each write. Building the page once and writing it twice keeps the HTML and the Markdown saying the same
numbers."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Text:
    text: str


@dataclass
class Note:
    """Something the page cannot show, and why (a run without data, a figure that does not apply)."""

    text: str


@dataclass
class Code:
    text: str
    caption: str = ""


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list[str]]
    marked: list[int] = field(default_factory=list)  # rows drawn bold: the baseline, the cost front
    numeric: list[int] = field(default_factory=list)  # columns aligned right


@dataclass
class Figure:
    name: str  # the picture's file name in a Markdown folder, without .png
    png: bytes
    caption: str


@dataclass
class Heading:
    text: str


Block = Text | Note | Code | Table | Figure | Heading


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def anchor(self) -> str:
        return "".join(c if c.isalnum() else "-" for c in self.title.lower()).strip("-")


@dataclass
class Document:
    title: str
    lead: list[str]  # lines under the title: when, by what, from which paths
    sections: list[Section]

    def figures(self) -> list[Figure]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Figure)]

    def tables(self) -> list[Table]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Table)]
