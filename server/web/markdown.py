"""Markdown -> sanitized HTML for entry answers.

Raw HTML in the Markdown is escaped, code blocks are highlighted by Pygments,
`$math$` and `$$math$$` become elements that the page renders with the vendored
KaTeX, and the result passes through nh3 with an allow-list, so nothing an
entry contains can run script in a reader's browser.
"""

from __future__ import annotations

import html
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from mdit_py_plugins.dollarmath import dollarmath_plugin
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

# The allow-list. `class` is kept so Pygments colours and math markers survive;
# no tag here can carry script, style or event handlers.
ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "span", "div", "a",
    "ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td", "sup", "sub", "kbd",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "span": {"class"},
    "div": {"class"},
    "code": {"class"},
    "pre": {"class"},
    "ol": {"start"},
}
URL_SCHEMES = {"http", "https", "mailto"}

_FORMATTER = HtmlFormatter(nowrap=True)


def _highlight(code: str, lang: str, _attrs: str) -> str:
    """Pygments markup for a fenced block; plain escaped text when the language is unknown."""
    try:
        lexer = get_lexer_by_name(lang or "text")
    except ClassNotFound:
        lexer = get_lexer_by_name("text")
    body = highlight(code, lexer, _FORMATTER)
    css_lang = "".join(c for c in lang if c.isalnum() or c in "-_+") or "text"
    return f'<pre class="highlight"><code class="language-{css_lang}">{body}</code></pre>\n'


def _math_inline(self: RendererHTML, tokens: list[Token], idx: int,
                 options: OptionsDict, env: EnvType) -> str:
    return f'<span class="math math-inline">{html.escape(tokens[idx].content)}</span>'


def _math_block(self: RendererHTML, tokens: list[Token], idx: int,
                options: OptionsDict, env: EnvType) -> str:
    return f'<div class="math math-display">{html.escape(tokens[idx].content.strip())}</div>\n'


def _math_display_inline(self: RendererHTML, tokens: list[Token], idx: int,
                         options: OptionsDict, env: EnvType) -> str:
    # `$$...$$` inside a paragraph: a block-looking formula that must stay inside the <p>
    return f'<span class="math math-display">{html.escape(tokens[idx].content.strip())}</span>'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.use(dollarmath_plugin, allow_labels=False, allow_space=True, allow_digits=False,
           double_inline=True)
    md.add_render_rule("math_inline", _math_inline)
    md.add_render_rule("math_inline_double", _math_display_inline)
    md.add_render_rule("math_block", _math_block)
    return md


def sanitize(html_text: str) -> str:
    """Keep only the allow-listed tags and attributes; links get rel=noopener."""
    return nh3.clean(
        html_text,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


@lru_cache(maxsize=1024)
def render_markdown(text: str) -> str:
    """Render entry Markdown to HTML that is safe to insert into a page."""
    return sanitize(_parser().render(text))


def pygments_css(selector: str = ".highlight") -> str:
    """The stylesheet for highlighted code (light and dark schemes)."""
    light = HtmlFormatter(style="friendly").get_style_defs(selector)
    dark = HtmlFormatter(style="monokai").get_style_defs(selector)
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


def highlight_code(code: str, lang: str = "python") -> str:
    """A whole source file as highlighted, sanitized HTML (for showing a demo's code)."""
    return sanitize(_highlight(code, lang, ""))
