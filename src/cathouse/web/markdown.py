"""Cats' descriptions and changelogs: Markdown from publishers, rendered safely.

CommonMark (markdown-it-py) with raw HTML off: a ``<script>`` or an ``onerror=`` in a
description comes out as text. Links and images whose scheme could run code
(``javascript:``, ``vbscript:``, ``file:``, ``data:`` other than images) are refused by the
parser's own link check; links leave with ``rel="nofollow noopener"``. Headings move down two
levels (``#`` becomes ``<h3>``): a description sits under the page's own ``<h1>`` and a section's
``<h2>``, and headings must stay in order for those who navigate by them.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from markupsafe import Markup

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def _link_open(self: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener")
    return self.renderToken(tokens, idx, options, env)


def _shift_headings(state: StateCore) -> None:
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + 2)}"


_md.add_render_rule("link_open", _link_open)
_md.core.ruler.push("shift_headings", _shift_headings)


def render(text: str | None) -> Markup:
    """``text`` as HTML safe to put in a page."""
    return Markup(_md.render(text or ""))  # noqa: S704 - markdown-it escapes everything, raw HTML is off
