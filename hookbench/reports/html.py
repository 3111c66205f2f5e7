"""A report as one self-contained HTML page: its Markdown rendered, its plots inline as base64 PNG.

MLflow's artifact view renders an `.html` artifact in the page, where its markdown preview shows
no images (see hookbench.reports.report). The page needs no network: no script, and no stylesheet,
font or image from elsewhere. Text from the run (model outputs in the diff table) cannot become
markup: every `<` in the Markdown is escaped before it is rendered.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import markdown

STYLE = ("body{font-family:system-ui,sans-serif;max-width:72em;margin:1em auto;padding:0 1em}"
         "table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:2px 8px;text-align:left}"
         "img{max-width:100%}figure{margin:1em 0}code{white-space:pre-wrap}")


def inline_png(path: Path) -> str:
    """An <img> whose source is the PNG itself (a data: URL)."""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'


def page(title: str, text: str, images: list[Path]) -> str:
    """The Markdown `text` as HTML with the plots that exist among `images` inline, each under its name.

    The verdict comes before any picture: the text up to its first `## ` section (the title, the verdict
    and the guards line) first, then the plots in the order given, then the rest of the text."""
    lead, sep, rest = text.partition("\n## ")
    figures = "".join(f"<figure>{inline_png(p)}<figcaption>{html.escape(p.name)}</figcaption></figure>"
                      for p in images if p.exists())
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{_html(lead)}\n{figures}\n{_html(sep.lstrip() + rest)}\n"
            "</body></html>\n")


def _html(text: str) -> str:
    """Markdown as HTML, every `<` escaped first: text from a run never becomes markup."""
    return markdown.markdown(text.replace("<", "&lt;"), extensions=["tables"])


def write_page(path: Path, title: str, text: str, images: list[Path]) -> Path:
    path.write_text(page(title, text, images), encoding="utf-8")
    return path
