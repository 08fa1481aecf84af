"""The note being written (Markdown + figures) and its HTML rendering."""

from __future__ import annotations

import html as html_mod
import logging
import re
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


class Note:
    """Accumulates Markdown and the figures it links to."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.fig_dir = out.parent / "figures"
        self.parts: list[str] = []

    def add(self, *blocks: str) -> None:
        """Append Markdown blocks separated by blank lines."""
        self.parts.extend(b.strip("\n") for b in blocks if b)

    def figure(self, path: Path | None, caption: str) -> None:
        """Link a figure (relative to the note) with its caption."""
        if path is not None and path.is_file():
            rel = path.relative_to(self.out.parent).as_posix()
            self.add(f"![{caption}]({rel})\n\n*{caption}*")

    def copy_figure(self, src: Path, name: str, caption: str) -> None:
        """Copy a figure written by another command into figures/ and link it."""
        if src.is_file():
            self.fig_dir.mkdir(parents=True, exist_ok=True)
            dst = self.fig_dir / name
            shutil.copyfile(src, dst)
            self.figure(dst, caption)

    def text(self) -> str:
        """The whole note."""
        return "\n\n".join(self.parts) + "\n"


# --------------------------------------------------------------------------- HTML


def to_html(markdown: str, title: str = "cityseg technical note") -> str:
    """Render the note to a standalone HTML page (markdown-it if present, else a minimal converter)."""
    try:
        from markdown_it import MarkdownIt

        body = MarkdownIt("commonmark").enable("table").render(markdown)
    except ImportError:
        body = minimal_html(markdown)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
        "line-height:1.5}table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}"
        "td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%}"
        "code{background:#f4f4f4;padding:0 .2rem}"
        # Wide tables (the models table has 15 columns): scroll on a screen; on paper use the
        # whole A4 width, a smaller font and cells that wrap anywhere, so no column is cut off.
        "@media screen{table{display:block;max-width:100%;overflow-x:auto}}"
        "@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}"
        "table{font-size:6.5pt;line-height:1.25;width:100%}"
        "td,th{padding:.1rem .15rem}td{overflow-wrap:anywhere}"
        "code{padding:0;background:none}img{break-inside:avoid}}"
    )
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html_mod.escape(title)}</title><style>{style}</style></head>\n"
        f"<body>\n{body}</body></html>\n"
    )


def _inline(text: str) -> str:
    text = html_mod.escape(text, quote=False)
    text = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2">', text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)
    text = re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def minimal_html(markdown: str) -> str:
    """Headings, paragraphs, bullet lists, tables, images, bold/italic/code: what the note uses."""
    out = []
    for block in markdown.split("\n\n"):
        lines = block.strip().splitlines()
        if not lines:
            continue
        if lines[0].startswith("#"):
            level = len(lines[0]) - len(lines[0].lstrip("#"))
            out.append(f"<h{level}>{_inline(lines[0][level:].strip())}</h{level}>")
        elif lines[0].startswith("|") and len(lines) > 1:
            cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
            head = "".join(f"<th>{_inline(c)}</th>" for c in cells[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                for row in cells[2:]
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif lines[0].startswith("- "):
            items = "".join(f"<li>{_inline(ln[2:])}</li>" for ln in lines)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(out) + "\n"
