"""A tiny document model rendered twice: a self-contained HTML page and its Markdown twin.

The report is built once as sections of blocks (paragraphs, tables, images, code); each renderer turns
them into its format. The HTML embeds every image as a base64 ``data:`` URI, so the page opens from disk
with no server, no network and no files beside it; the Markdown links the PNG files by relative path.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Paragraph:
    text: str
    """Plain text (escaped on rendering)."""


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    """Cells as already formatted text."""


@dataclass
class Image:
    path: Path
    """A PNG file."""
    caption: str


@dataclass
class Code:
    text: str
    language: str = ""


Block = Paragraph | Table | Image | Code


@dataclass
class Section:
    id: str
    """Anchor id of the section (``<section id=...>`` in HTML)."""
    title: str
    blocks: list[Block] = field(default_factory=list)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #aaa; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; text-align: left; } th { background: #eee; }
figure { margin: 1em 0; } figcaption { font-size: 0.85em; color: #555; }
img { max-width: 100%; } pre { background: #f5f5f5; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
nav a { margin-right: 1em; }
"""


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _html_table(block: Table) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in block.header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


#: Block type -> its HTML.
_HTML: dict[type, Callable[[Any], str]] = {
    Paragraph: lambda b: f"<p>{html.escape(b.text)}</p>",
    Table: _html_table,
    Image: lambda b: (f'<figure><img src="{_data_uri(b.path)}" alt="{html.escape(b.caption)}">'
                      f"<figcaption>{html.escape(b.caption)}</figcaption></figure>"),
    Code: lambda b: f"<pre><code>{html.escape(b.text)}</code></pre>",
}


def render_html(title: str, intro: str, sections: list[Section]) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
           f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>", f"<p>{e(intro)}</p>",
           "<nav>" + "".join(f'<a href="#{e(s.id)}">{e(s.title)}</a>' for s in sections) + "</nav>"]
    for section in sections:
        out.append(f'<section id="{e(section.id)}"><h2>{e(section.title)}</h2>')
        out += [_HTML[type(block)](block) for block in section.blocks]
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(block: Table, base: Path) -> list[str]:
    return ["| " + " | ".join(_md_cell(h) for h in block.header) + " |", "|" + "---|" * len(block.header),
            *["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows], ""]


#: Block type -> its Markdown lines (images linked relative to ``base``).
_MARKDOWN: dict[type, Callable[[Any, Path], list[str]]] = {
    Paragraph: lambda b, base: [b.text, ""],
    Table: _md_table,
    Image: lambda b, base: [f"![{b.caption}]({b.path.resolve().relative_to(base.resolve()).as_posix()})",
                            f"*{b.caption}*", ""],
    Code: lambda b, base: [f"```{b.language}", b.text.rstrip("\n"), "```", ""],
}


def render_markdown(title: str, intro: str, sections: list[Section], base: Path) -> str:
    """Markdown with images linked relative to ``base`` (the folder the Markdown file is written to)."""
    out = [f"# {title}", "", intro, ""]
    for section in sections:
        out += [f'<a id="{section.id}"></a>', f"## {section.title}", ""]
        for block in section.blocks:
            out += _MARKDOWN[type(block)](block, base)
    return "\n".join(out)
