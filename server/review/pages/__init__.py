"""Reading a week's Q&A page (plain text, Markdown or HTML) into blocks.

A block is a heading (with its level), a paragraph, a blockquote, code, a note
(an admonition or callout: an aside, never a question), a question the page
marks as one (a question admonition, a FAQ table's row, `<p class="question">`)
or a break (a thematic break, the end of an admonition or table row: it ends an
answer). The page's front matter (YAML between `---` lines or TOML between `+++`
lines) is read apart: its title and date become tags, never content. Raw HTML,
embedded posts, Hugo shortcodes and Jekyll's Liquid tags become plain Markdown
text or vanish; `<script>`, `<style>` and the like are dropped, so nothing a page
carries can run where an answer is shown.

The modules, each importing only those above it:

- blocks.py: Block and its kinds, the formats, front matter and its tags, detect_format;
- pairs.py: the question and answer marks ("Q:", "A:", "Student:"), split_pairs;
- text.py: plain text;
- html.py: HTML (an HTMLParser), and HTML inside Markdown turned into Markdown;
- markdown.py: Markdown, with Liquid, shortcodes, admonitions, directives, FAQ tables;
- this package: page_blocks, a page's body in its format as blocks.
"""

from __future__ import annotations

from server.review.pages.blocks import (
    Block,
    BlockKind,
    Format,
    FrontMatter,
    detect_format,
    page_tag,
    short_tag,
    split_front_matter,
)
from server.review.pages.html import html_blocks, inline_html_to_markdown
from server.review.pages.markdown import markdown_blocks
from server.review.pages.pairs import BOLD_LINE, LIST_ITEM, read_mark, split_pairs
from server.review.pages.text import text_blocks

__all__ = ["BOLD_LINE", "LIST_ITEM", "Block", "BlockKind", "Format", "FrontMatter",
           "detect_format", "html_blocks", "inline_html_to_markdown", "markdown_blocks",
           "page_blocks", "page_tag", "read_mark", "short_tag", "split_front_matter",
           "split_pairs", "text_blocks"]


def page_blocks(text: str, fmt: Format) -> list[Block]:
    """A page's body (front matter already removed) as blocks."""
    return {"text": text_blocks, "markdown": markdown_blocks, "html": html_blocks}[fmt](text)
