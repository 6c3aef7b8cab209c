"""Markdown rendering: highlighted code, math markers, and nothing that can run script."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from indexer.kb import parse_entry
from server.web.markdown import highlight_code, pygments_css, render_markdown, sanitize

REPO = Path(__file__).resolve().parents[2]
SAFE_TAGS = {"p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "span", "div", "a", "ul",
             "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead",
             "tbody", "tr", "th", "td", "sup", "sub", "kbd"}


class _Audit(HTMLParser):
    """Collects every element and attribute that could run script or load something."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name in ("style", "src", "srcdoc", "formaction"):
                self.problems.append(f"{tag}[{name}]")
            if name == "href" and not (value or "").lower().startswith(("http:", "https:",
                                                                         "mailto:", "#", "/")):
                self.problems.append(f"href={value}")


def unsafe_parts(html: str) -> list[str]:
    """What in this HTML a browser could execute or fetch (empty when it is safe)."""
    audit = _Audit()
    audit.feed(html)
    return audit.problems


@pytest.mark.parametrize("markdown", [
    "<script>alert(1)</script>",
    "hello <img src=x onerror=alert(1)>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "<a href='javascript:alert(1)'>x</a>",
    "<iframe src='https://example.com'></iframe>",
    "<div onclick='alert(1)'>x</div>",
    "<style>body{display:none}</style>",
    "```html\n<script>alert(1)</script>\n```",
    "`<script>alert(1)</script>`",
    "$<script>alert(1)</script>$",
    "$$\n<img src=x onerror=alert(1)>\n$$",
    "![x](javascript:alert(1))",
    "<svg onload=alert(1)>",
])
def test_nothing_executable_survives(markdown: str) -> None:
    html = render_markdown(markdown)
    assert unsafe_parts(html) == [], html


def test_raw_html_is_shown_as_text() -> None:
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in render_markdown("<script>alert(1)</script>")


def test_sanitize_keeps_allowed_markup_and_drops_the_rest() -> None:
    out = sanitize('<p class="x" onclick="y">a <a href="https://e.org" onmouseover="z">b</a>'
                   '<script>c</script><span class="math">d</span></p>')
    assert 'onclick' not in out and 'onmouseover' not in out and "<script" not in out
    assert '<span class="math">d</span>' in out
    assert 'href="https://e.org"' in out and 'rel="noopener noreferrer nofollow"' in out


def test_code_blocks_are_highlighted() -> None:
    html = render_markdown("```python\nx = torch.zeros(3)\n```")
    assert '<pre class="highlight"><code class="language-python">' in html
    assert '<span class="n">torch</span>' in html


def test_unknown_language_falls_back_to_plain_text() -> None:
    html = render_markdown('```nosuchlang" onload="x\na < b\n```')
    assert "a &lt; b" in html and "onload" not in html


def test_math_becomes_escaped_markers_for_katex() -> None:
    html = render_markdown(r"Inline $a < b$ and display:" "\n\n$$\n\\frac{1}{n}\n$$\n")
    assert '<span class="math math-inline">a &lt; b</span>' in html
    assert '<div class="math math-display">\\frac{1}{n}</div>' in html


def test_dollar_amounts_are_not_math() -> None:
    assert "math" not in render_markdown("It costs $5 and $10.")


def test_tables_and_emphasis() -> None:
    html = render_markdown("| a | b |\n|---|---|\n| *1* | **2** |")
    assert "<table>" in html and "<em>1</em>" in html and "<strong>2</strong>" in html


def test_highlight_code_escapes_source() -> None:
    html = highlight_code('print("<script>")\n')
    assert "<script" not in html and "&lt;script&gt;" in html


def test_every_kb_entry_renders_safely() -> None:
    for path in sorted((REPO / "kb").glob("*.yaml")):
        entry = parse_entry(path.read_text(encoding="utf-8"), path.name)[0]
        if not entry.answerable:
            continue
        html = render_markdown(entry.answer)
        assert html.strip(), entry.id
        assert unsafe_parts(html) == [], entry.id


def test_static_pygments_css_is_current() -> None:
    static = (REPO / "server/web/static/css/pygments.css").read_text()
    assert static == pygments_css(), "regenerate server/web/static/css/pygments.css"


def test_highlighted_code_reads_on_both_code_backgrounds() -> None:
    import re

    from server.web.markdown import CODE_BG, contrast

    light, dark = pygments_css().split("@media")
    for part, bg in ((light, CODE_BG["light"]), (dark, CODE_BG["dark"])):
        for line in part.splitlines():
            if "linenos" in line:
                continue
            for color in re.findall(r"(?<!background-)color: (#[0-9a-fA-F]{6})", line):
                assert contrast(color, bg) >= 4.5, line
