"""Reading an HTML page (or raw HTML inside Markdown) into blocks, with an HTMLParser:
headings, paragraphs, quotes, code, notes and marked questions; scripts, styles and
other things that could run are dropped.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

from server.review.pages.blocks import Block
from server.review.pages.pairs import split_pairs

# --- HTML --------------------------------------------------------------------------------
# A blockquote with one of these classes is an embedded post (a tweet, a toot...), kept
# in an answer as a quoted paragraph, never read as a question.
_EMBED_CLASS = re.compile(r"tweet|toot|mastodon|bluesky|instagram|tiktok|reddit|embed|"
                          r"threads|linkedin|facebook", re.I)
# A <br> outside code, until the paragraph it breaks is split into question and answer.
_BR = "\x01"
# The start of what Markdown would read as a raw HTML tag: "<img", "</p", "<!--", "<?".
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
# Inline emphasis: the same Markdown marker opens and closes it.
EMPHASIS = {"strong": "**", "b": "**", "em": "*", "i": "*"}
# Exported documents (Google Docs, Word) mark text with styles, not tags: a weight of
# 600-900 or bold is bold; a monospace font family is code.
_BOLD_WEIGHT = re.compile(r"bold(er)?|[6-9]00")
_CODE_FONT = re.compile(r"courier|mono|consolas", re.I)
# Bold runs that an export splits in two ("**How does ****it work?**"), read as one.
_SPLIT_BOLD = re.compile(r"\*\*(\s*)\*\*")
# A button that opens an answer (an accordion's, a collapsible's) holds its question; other
# buttons ("Back to top") are no content.
_DISCLOSURE_CLASS = re.compile(r"accordion|collaps|faq|question", re.I)
# A heading's permalink, which a rendered page appends to it: "Why?¶", "Why? #".
_PERMALINK = re.compile(r"\s*(?:[¶§\U0001f517]|(?<=\s)#)$")
# The class of an aside in a rendered page: an admonition (Sphinx, MkDocs, Docusaurus),
# a callout (Quarto), an alert (Bootstrap, GitHub's "markdown-alert").
_ASIDE_CLASS = re.compile(r"(?:^|\s)(?:markdown-)?(?:admonition|callout|alert)(?:[\s-]|$)")
# The class of an exported document's title paragraph (Google Docs, Word): a heading.
_TITLE_CLASS = re.compile(r"(?:^|\s)(?:title|MsoTitle)(?:\s|$)")
# The class of an element that holds a question: "question", "faq-question", "faq-q".
_QUESTION_CLASS = re.compile(r"(?:^|\s)(?:[\w-]*-)?(?:question|q)(?:\s|$)", re.I)


def _br_chunks(text: str) -> list[list[str]]:
    """The lines (split at <br>) of an HTML paragraph, in question and answer chunks.

    Two <br> in a row part paragraphs, and in each a first line that ends with "?"
    asks ("Why?<br>Because."), as do the lines `split_pairs` finds.
    """
    chunks: list[list[str]] = []
    for part in re.split(rf"{_BR}\s*{_BR}", text):
        lines = part.split(_BR)
        if len(lines) > 1 and lines[0].strip().endswith("?"):
            chunks += [[lines[0]], *split_pairs(lines[1:])]
        else:
            chunks += split_pairs(lines)
    return chunks


def _css(style: str, prop: str) -> str:
    """The last value `style` (CSS declarations) gives a property, lowercase; "" if none."""
    values = re.findall(rf"(?:^|[;\s]){prop}\s*:\s*([^;]+)", style, re.I)
    return values[-1].strip().lower() if values else ""


def _add_class_styles(styles: dict[str, str], sheet: str) -> None:
    """Add what a <style> sheet declares for each class (".c3{font-weight:700}")."""
    for rule in sheet.split("}"):  # "selectors { body": string splits, linear on any page
        selectors, brace, body = rule.rpartition("{")
        if not brace:
            continue
        for name in re.findall(r"^\s*\.([\w-]+)\s*$", selectors.replace(",", "\n"), re.M):
            styles[name] = styles.get(name, "") + ";" + body


class _HTMLBlocks(HTMLParser):
    """Headings, paragraphs, quotes, list items and <pre> of HTML, as Markdown blocks."""

    BLOCK = {"p", "li", "dt", "dd", "div", "td", "section", "article", "details", "summary",
             "figure", "figcaption"}
    SKIP = {"script", "style", "head", "nav", "footer", "template", "noscript", "object",
            "embed", "svg", "form", "button", "select", "textarea"}

    def __init__(self, collapse: bool = True) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.kind: str | None = None
        self.level = 0
        self.skip = 0
        self.quote: list[str] = []  # "quote" or "embed", one per open <blockquote>
        self.href: str | None = None
        self.collapse = collapse
        # what the page's <style> sheets declare for each class, and the sheet being read
        self.class_styles: dict[str, str] = {}
        self.sheet: list[str] | None = None
        self.marks: list[tuple[str, str]] = []  # (tag, Markdown mark) of open inline tags
        # the element marked as a question, until its first text: tag, nesting depth
        self.asking: tuple[str, int] | None = None
        self.buttons = 0  # open accordion buttons, read as text
        self.divs = 0  # open <div>s
        self.aside_at: int | None = None  # the <div> depth where an open aside began

    def _flush(self) -> None:
        text = "".join(self.buf)
        self.buf = []
        if self.kind == "code":
            if text.strip():
                fence = "`" * max(3, 1 + max(map(len, re.findall("`+", text)), default=0))
                self.blocks.append(Block("code", f"{fence}\n{text.strip(chr(10))}\n{fence}"))
        elif self.kind in ("heading", "question") or self.quote and self.quote[-1] == "quote":
            text = self._text(_SPLIT_BOLD.sub(r"\1", text.replace(_BR, " ")))
            if self.kind == "heading":
                text = _PERMALINK.sub("", text)
            if text and self.kind == "question":
                self.asking = None  # the question element's first text asks; the rest answers
            if text:
                self.blocks.append(Block("heading", text, self.level) if self.kind == "heading"
                                   else Block("question", text) if self.kind == "question"
                                   else Block("quote", text))
        else:  # a question and its answer may share a <p>, split by <br>
            prefix = ("> " if self.quote else "") + ("- " if self.kind == "li" else "")
            for chunk in _br_chunks(_SPLIT_BOLD.sub(r"\1", text)):
                text = self._text(" ".join(chunk))
                if text:
                    self.blocks.append(Block("note" if self.aside_at else "paragraph",
                                             prefix + text))
        self.kind = None

    def _text(self, text: str) -> str:
        return re.sub(r"\s+", " ", text).strip() if self.collapse else text.strip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "button" and self._opens_button(attributes.get("class") or ""):
            return
        if tag == "style":
            self.sheet = []
        if tag in self.SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        if re.fullmatch(r"h[1-6]", tag):
            self._flush()
            self.kind, self.level = "heading", int(tag[1])
        elif tag == "pre":
            self._flush()
            self.kind = "code"
        elif tag == "blockquote" and self.kind != "code":
            self._flush()
            embed = _EMBED_CLASS.search(attributes.get("class") or "") or self.quote
            self.quote.append("embed" if embed else "quote")
            self.kind = "p"
        elif tag in self.BLOCK and self.kind != "code":
            self._flush()
            classes = attributes.get("class") or ""
            self._ask(tag, classes)
            self._open_div(tag, classes)
            self.kind = "li" if tag == "li" else "question" if self.asking else "p"
            if _TITLE_CLASS.search(classes):
                self.kind, self.level = "heading", 1  # a document's title paragraph
        elif tag == "br":
            self.buf.append("\n" if self.kind == "code" else _BR)
        elif tag == "iframe":
            src = attributes.get("src") or ""
            if src.startswith(("http://", "https://")):  # an embedded video: its link
                self.buf.append(f" <{src}> ")
            self.skip += 1
        elif (mark := self._inline_mark(tag, attributes)) is not None:
            self.buf.append(mark)
            self.marks.append((tag, mark))
        elif tag == "a":
            href = attributes.get("href") or ""
            if href.startswith(("http://", "https://")):
                self.href = href
                self.buf.append("[")

    def _opens_button(self, classes: str) -> bool:
        """Whether a <button> is read: an accordion's, or one in a heading, holds the
        question it opens (any other, "Back to top", is skipped)."""
        if self.skip or self.kind != "heading" and not _DISCLOSURE_CLASS.search(classes):
            return False
        self.buttons += 1
        if self.kind != "heading":
            self._flush()
            self.kind = "p"
        return True

    def _ask(self, tag: str, classes: str) -> None:
        """Follow the element the page marks as a question (class="question") as it opens."""
        if self.asking and self.asking[0] == tag == "p":
            self.asking = None  # a <p> left open ends where the next one starts
        if self.asking and self.asking[0] == tag:
            self.asking = (tag, self.asking[1] + 1)
        elif not self.asking and _QUESTION_CLASS.search(classes):
            self.asking = (tag, 1)

    def _close_block(self, tag: str) -> None:
        """Follow a question element and the open <div>s (and asides) as a block closes."""
        if self.asking and self.asking[0] == tag:
            depth = self.asking[1] - 1
            self.asking = (tag, depth) if depth else None
        if tag == "div":
            self.aside_at = None if self.aside_at == self.divs else self.aside_at
            self.divs = max(0, self.divs - 1)

    def _open_div(self, tag: str, classes: str) -> None:
        """Count the open <div>s, and note where an aside (an admonition, a callout, an
        alert) opens: what it holds becomes notes, never questions."""
        if tag != "div":
            return
        self.divs += 1
        if self.aside_at is None and _ASIDE_CLASS.search(classes) and \
                not _QUESTION_CLASS.search(classes):
            self.aside_at = self.divs

    def _inline_mark(self, tag: str, attributes: dict[str, str | None]) -> str | None:
        """The Markdown mark at either end of a code span, emphasis or styled <span> ("" in
        code blocks and headings, which take their text plain); None for other tags."""
        if tag == "code":
            return "`" if self.kind != "code" else ""
        if tag not in EMPHASIS and tag != "span":
            return None
        if self.kind in ("code", "heading"):
            return ""
        style = ";".join([*(self.class_styles.get(name, "") for name in
                            (attributes.get("class") or "").split()),
                          attributes.get("style") or ""])
        if _CODE_FONT.search(_css(style, "font-family")):
            return "`"
        weight, slant = _css(style, "font-weight"), _css(style, "font-style")
        bold = bool(_BOLD_WEIGHT.fullmatch(weight)) if weight else EMPHASIS.get(tag) == "**"
        italic = slant == "italic" or EMPHASIS.get(tag) == "*" and slant != "normal"
        return ("**" if bold else "") + ("*" if italic else "")

    def _close_mark(self, tag: str) -> None:
        """Write the mark that closes the innermost open `tag`, after any space it ends
        with ("**Why? **" would be no emphasis)."""
        at = next((n for n in range(len(self.marks) - 1, -1, -1) if self.marks[n][0] == tag),
                  None)
        if at is None:
            return
        mark = self.marks.pop(at)[1][::-1]
        last = self.buf.pop() if self.buf else ""
        text = last.rstrip() if mark else last
        self.buf += [text, mark, last[len(text):]]

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self.buttons and not self.skip:
            self.buttons -= 1
            if self.kind != "heading":
                self._flush()
            return
        if tag == "style" and self.sheet is not None:
            _add_class_styles(self.class_styles, "".join(self.sheet))
            self.sheet = None
        if tag in self.SKIP or tag == "iframe":
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag == "blockquote" and self.quote:
            self._flush()
            self.quote.pop()
        elif re.fullmatch(r"h[1-6]", tag) or tag == "pre" or (tag in self.BLOCK
                                                                and self.kind != "code"):
            self._flush()
            self._close_block(tag)
        elif tag in EMPHASIS or tag in ("code", "span"):
            self._close_mark(tag)
        elif tag == "a" and self.href:
            self.buf.append(f"]({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        if self.sheet is not None:
            self.sheet.append(data)
        if self.skip:
            return
        in_span = any("`" in mark for _, mark in self.marks)
        if self.kind != "code" and (not in_span or "`" in data):
            # "&lt;img onerror=...&gt;" is text on the page: it stays text in Markdown
            data = _TAG_START.sub("&lt;", data)
        self.buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_blocks(text: str, collapse: bool = True) -> list[Block]:
    """HTML: h1-h6 headings, p/li paragraphs, blockquotes, pre code; scripts dropped.

    `collapse=False` keeps line breaks inside a paragraph (for HTML inside Markdown).
    """
    parser = _HTMLBlocks(collapse)
    parser.feed(text)
    parser.close()
    return parser.blocks


# --- HTML inside Markdown ----------------------------------------------------------------
_INLINE_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(\s[^<>]*)?/?>|<!--.{0,2000}?-->", re.S)
# Left as they are inside converted HTML: code spans (`List<int>`) and autolinks.
_PROTECTED = re.compile(r"(`+)(.+?)\1|<https?://[^>\s]+>", re.S)


def inline_html_to_markdown(text: str) -> str:
    """A Markdown paragraph with HTML tags in it, the tags turned into Markdown or dropped.

    Code spans and autolinks are left alone: `List<int>` there is code, not a tag.
    """
    if not _INLINE_TAG.search(_PROTECTED.sub("", text)):
        return text
    spans: list[str] = []

    def keep(match: re.Match[str]) -> str:
        spans.append(match.group(0))
        return f"\x00{len(spans) - 1}\x00"

    parts = html_blocks(_PROTECTED.sub(keep, text), collapse=False)
    out = "\n\n".join(b.text if b.kind != "quote" else "> " + b.text for b in parts)
    return re.sub("\x00(\\d+)\x00", lambda m: spans[int(m.group(1))], out)
