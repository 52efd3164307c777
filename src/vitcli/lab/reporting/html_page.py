"""The report as one self-contained HTML file: pictures inline as data: URIs, the style in the page, no
script, nothing fetched from anywhere, so it opens offline, can be mailed as one file, and prints to PDF
from a browser with no table cut across pages and every figure kept with its caption."""

from __future__ import annotations

import base64
from html import escape

from vitcli.lab.reporting.document import Code, Document, Figure, Heading, Note, Table, Text

# System fonts only: a font fetched from the web would break "offline".
STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1b1b1b; max-width: 1100px; margin: 2em auto; padding: 0 1.5em; }
h1 { font-size: 1.7em; margin-bottom: .2em; }
h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; margin-top: 2em; padding-bottom: .2em; }
h3 { font-size: 1.05em; margin: 1.4em 0 .5em; }
.lead { color: #555; margin: 0; }
nav { margin: 1em 0 1.5em; color: #555; }
nav a { margin-right: 1em; color: #2457a6; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 12.5px; }
caption { caption-side: top; text-align: left; color: #444; padding-bottom: .35em; font-size: 13px; }
th, td { border-bottom: 1px solid #e2e2e2; padding: .25em .6em; text-align: left; vertical-align: top; }
th { border-bottom: 2px solid #999; background: #f6f6f6; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.marked td { font-weight: 600; background: #fff7d6; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 13px; margin-top: .3em; }
pre { background: #f6f6f6; padding: .6em .8em; overflow-x: auto; font-size: 12px; line-height: 1.35; }
.note { border-left: 3px solid #d08a00; background: #fff8ec; padding: .35em .7em; margin: .5em 0; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 11px; }
  nav { display: none; }
  h2, h3 { break-after: avoid; page-break-after: avoid; }
  table, figure, pre, .note { break-inside: avoid; page-break-inside: avoid; }
  thead { display: table-header-group; }
  figure img { max-height: 24cm; }
  a { color: inherit; text-decoration: none; }
}
@page { size: A4; margin: 14mm; }
"""


GENERATOR = "vitcli report"


def render_html(document: Document) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="{GENERATOR}">',  # what `--overwrite` may replace
        f"<title>{escape(document.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(document.title)}</h1>",
        *(f'<p class="lead">{escape(line)}</p>' for line in document.lead),
        "<nav>"
        + "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in document.sections)
        + "</nav>",
    ]
    for section in document.sections:
        parts.append(f'<section id="{section.anchor}"><h2>{escape(section.title)}</h2>')
        parts += [_block(block) for block in section.blocks]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _block(block) -> str:
    if isinstance(block, Heading):
        return f"<h3>{escape(block.text)}</h3>"
    if isinstance(block, Text):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Note):
        return f'<p class="note">{escape(block.text)}</p>'
    if isinstance(block, Code):
        caption = f"<figcaption>{escape(block.caption)}</figcaption>" if block.caption else ""
        return f"<figure><pre>{escape(block.text)}</pre>{caption}</figure>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(block.caption)}">'
            f"<figcaption>{escape(block.caption)}</figcaption></figure>"
        )
    raise TypeError(f"not a block of a report: {block!r}")


def _table(table: Table) -> str:
    def cell(tag: str, i: int, text: str) -> str:
        klass = ' class="n"' if i in table.numeric else ""
        return f"<{tag}{klass}>{escape(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(table.header))
    marked = ' class="marked"'
    body = "".join(
        f"<tr{marked if r in table.marked else ''}>"
        + "".join(cell("td", i, c) for i, c in enumerate(row))
        + "</tr>"
        for r, row in enumerate(table.rows)
    )
    return (
        f"<table><caption>{escape(table.caption)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )
