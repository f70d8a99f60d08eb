"""One report, two formats: report content as plain data, rendered to Markdown and HTML by templates.

A :class:`Report` is a title, some intro blocks and titled :class:`Section` s of blocks
(:class:`Paragraph`, :class:`Table`, :class:`Image`, :class:`Bullets`, :class:`Preformatted`,
:class:`Quote`). Builders (``eval/report.py``, ``demo/report.py``, ``eval compare``) say *what* a
report holds once; the Jinja2 templates ``templates/report.md.j2`` and ``templates/report.html.j2``
(package data) say *how* it looks. Text is plain: the HTML template autoescapes it, the Markdown
one writes it literally except where Markdown syntax would break (``|`` and newlines in table cells).
"""
from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Union

import jinja2


@dataclass(frozen=True)
class Span:
    """Inline text with a style: ``code``, ``strong`` or ``link`` (to ``href``)."""

    text: str
    style: Literal["code", "strong", "link"]
    href: str = ""


Inline = Union[str, Span]
"""A piece of a paragraph: plain text or a styled :class:`Span`."""


def code(text: str) -> Span:
    """Inline code (a path, a command)."""
    return Span(text, "code")


def strong(text: str) -> Span:
    """Bold text."""
    return Span(text, "strong")


def link(text: str, href: str) -> Span:
    """A link; ``href`` is written as given (relative paths stay relative)."""
    return Span(text, "link", href)


@dataclass(frozen=True)
class Paragraph:
    """Running text made of plain strings and :class:`Span` s."""

    parts: list[Inline]
    kind: ClassVar[str] = "paragraph"


@dataclass(frozen=True)
class Table:
    """A table of text cells; every row has ``len(head)`` cells."""

    head: list[str]
    rows: list[list[str]]
    totals: list[list[str]] = field(default_factory=list)
    """Summary rows (averages) after the body; their first cell is emphasised."""
    kind: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        # A short row would silently shift columns in Markdown; fail where the table is built.
        for row in [*self.rows, *self.totals]:
            if len(row) != len(self.head):
                raise ValueError(f"table row has {len(row)} cells, header has {len(self.head)}: {row}")


@dataclass(frozen=True)
class Image:
    """A figure: Markdown links ``src`` (a path relative to the report); HTML embeds ``png`` when
    given, so the page is self-contained, and links ``src`` otherwise."""

    alt: str
    src: str
    png: bytes | None = None
    kind: ClassVar[str] = "image"


@dataclass(frozen=True)
class Bullets:
    """An unordered list of plain sentences."""

    items: list[str]
    kind: ClassVar[str] = "bullets"


@dataclass(frozen=True)
class Preformatted:
    """Monospaced text shown line for line (a code block)."""

    text: str
    kind: ClassVar[str] = "preformatted"


@dataclass(frozen=True)
class Quote:
    """A quoted passage (block quote)."""

    text: str
    kind: ClassVar[str] = "quote"


Block = Union[Paragraph, Table, Image, Bullets, Preformatted, Quote]


@dataclass(frozen=True)
class Section:
    """A titled part of a report."""

    title: str
    blocks: list[Block]


@dataclass(frozen=True)
class Report:
    """A whole report. An empty title renders no heading (a bare table for ``eval compare``)."""

    title: str
    intro: list[Block] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)


# Numbers, percentages, "-" and "[low, high]" intervals are right-aligned in HTML tables.
_NUMERIC = re.compile(r"[-+]?\d+(\.\d+)?%?|-|\[[-+\d., ]+\]")


def _md_cell(text: str) -> str:
    """A table cell in Markdown: an unescaped ``|`` would start a new column, a newline end the row."""
    return " ".join(str(text).replace("|", r"\|").splitlines())


def _md_row(cells: list[str], total: bool = False) -> str:
    """A Markdown table row; a totals row has its label in bold."""
    out = [_md_cell(c) for c in cells]
    if total and out:
        out[0] = f"**{out[0]}**"
    return "| " + " | ".join(out) + " |"


def _md_fence(text: str) -> str:
    """A code fence longer than any backtick run inside ``text``, so the block cannot end early."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _data_uri(png: bytes) -> str:
    """PNG bytes as a ``data:`` URI, so the HTML page needs no file next to it."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@functools.cache  # built once, on first use: loading the templates is the only cost
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("emoreason.eval", "templates"),
        # HTML-escape everything in the HTML template; Markdown is written literally.
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,  # a misspelt field is an error, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(md_row=_md_row, md_fence=_md_fence, data_uri=_data_uri)
    env.tests["numeric"] = lambda text: bool(_NUMERIC.fullmatch(str(text)))
    return env


def render(report: Report, fmt: Literal["md", "html"]) -> str:
    """``report`` as Markdown (``md``) or as a self-contained HTML page (``html``)."""
    if fmt not in ("md", "html"):
        raise ValueError(f"unknown report format {fmt!r} (md or html)")
    text = _environment().get_template(f"report.{fmt}.j2").render(report=report)
    # every block is followed by a blank line; the file ends with exactly one newline
    return text.rstrip("\n") + "\n"


def write_report_files(report: Report, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``out_dir/report.md`` and ``out_dir/report.html``; return their paths."""
    out = Path(out_dir)
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text(render(report, "md"), encoding="utf-8")
    html_path.write_text(render(report, "html"), encoding="utf-8")
    return md_path, html_path


__all__ = ["Report", "Section", "Block", "Paragraph", "Table", "Image", "Bullets", "Preformatted", "Quote", "Span", "Inline",
           "code", "strong", "link", "render", "write_report_files"]
