"""Whether a printed page cut a table: its PDF's text, page by page (`browser.Rendered.pdf_pages`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from browser import Rendered


def tables_cut(rendered: Rendered, tables: list[list[str]]) -> list[str]:
    """Say, for each table whose given cell texts are not all on one PDF page, where they are.

    Give texts found once in the document and in no other text (`r1` is in `r10`: say `r01`), such as
    the first cells of a table's first and last rows. pypdf puts spaces and line breaks where it likes,
    so whitespace is ignored.
    """
    if not rendered.pdf_pages:
        raise ValueError("render(..., pdf=PATH) first: there are no PDF pages to look in")
    pages = [_squeeze(text) for text in rendered.pdf_pages]
    problems = []
    for number, cells in enumerate(tables, 1):
        where = {cell: [i for i, text in enumerate(pages, 1) if _squeeze(cell) in text] for cell in cells}
        if set.intersection(*(set(found) for found in where.values())):
            continue
        said = ", ".join(f"{cell!r} {_pages(found)}" for cell, found in where.items())
        problems.append(f"table {number} is not whole on any page: {said}")
    return problems


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _pages(found: list[int]) -> str:
    return f"on page {'/'.join(map(str, found))}" if found else "nowhere in the PDF"
