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
from pygments.style import Style
from pygments.styles import get_style_by_name
from pygments.util import ClassNotFound

from indexer.schema import LINK_SCHEMES

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
        url_schemes=set(LINK_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


@lru_cache(maxsize=1024)
def render_markdown(text: str) -> str:
    """Render entry Markdown to HTML that is safe to insert into a page."""
    return sanitize(_parser().render(text))


# The pages' code backgrounds (--code-bg in app.css), light and dark.
CODE_BG = {"light": "#f4f2ee", "dark": "#272822"}
MIN_CONTRAST = 4.5  # WCAG AA for normal text


def pygments_css(selector: str = ".highlight") -> str:
    """The stylesheet for highlighted code (light and dark schemes), every token colour
    adjusted to at least WCAG AA contrast on the page's code background."""
    light = HtmlFormatter(style=readable_style("friendly", CODE_BG["light"]))
    dark = HtmlFormatter(style=readable_style("monokai", CODE_BG["dark"]))
    return (f"{light.get_style_defs(selector)}\n@media (prefers-color-scheme: dark) {{\n"
            f"{dark.get_style_defs(selector)}\n}}\n")


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two #rrggbb colours."""
    def luminance(color: str) -> float:
        rgb = [int(color.lstrip("#")[i:i + 2], 16) / 255 for i in (0, 2, 4)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _readable(color: str, background: str) -> str:
    """`color` moved towards black (light background) or white (dark) until it reads."""
    target = 0 if contrast(background, "#000000") > contrast(background, "#ffffff") else 255
    rgb = [int(color[i:i + 2], 16) for i in (0, 2, 4)]
    for step in range(21):
        mixed = "#" + "".join(f"{round(c + (target - c) * step / 20):02x}" for c in rgb)
        if contrast(mixed, background) >= MIN_CONTRAST:
            return mixed
    return "#000000" if target == 0 else "#ffffff"


def readable_style(name: str, background: str) -> type[Style]:
    """A pygments style like `name` whose colours all read on `background`."""
    base = get_style_by_name(name)
    styles = {}
    for token, spec in base.styles.items():
        parts = []
        for part in spec.split():
            if part.startswith("#") and not part.startswith("#bg") and len(part) in (4, 7):
                color = part[1:] if len(part) == 7 else "".join(c * 2 for c in part[1:])
                part = _readable(color, background)
            parts.append(part)
        styles[token] = " ".join(parts)
    return type(f"Readable{base.__name__}", (base,), {"styles": styles,
                                                     "background_color": background})


def highlight_code(code: str, lang: str = "python") -> str:
    """A whole source file as highlighted, sanitized HTML (for showing a demo's code)."""
    return sanitize(_highlight(code, lang, ""))
