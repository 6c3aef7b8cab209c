"""Reading a week's Q&A page (plain text, Markdown or HTML) into blocks.

A block is a heading (with its level), a paragraph, a blockquote or code. The
page's front matter (YAML between `---` lines or TOML between `+++` lines) is
read apart: its title and date become tags, never content. Raw HTML, embedded
posts and Hugo shortcodes become plain Markdown text; `<script>`, `<style>` and
the like are dropped, so nothing a page carries can run where an answer is shown.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal

import yaml

Format = Literal["text", "markdown", "html"]
BlockKind = Literal["heading", "paragraph", "quote", "code"]


@dataclass
class Block:
    """One block of a page: a heading (with its level), a paragraph, a quote, or code."""

    kind: BlockKind
    text: str
    level: int = 0


@dataclass
class FrontMatter:
    """What a page's front matter says about it: title and date (either may be missing)."""

    title: str = ""
    date: str = ""
    tags: list[str] = field(default_factory=list)


# --- front matter ------------------------------------------------------------------------
_FRONT = re.compile(r"\A\ufeff?(---|\+\+\+)[ \t]*\n(.*?)\n\1[ \t]*(?:\n|\Z)", re.S)


def split_front_matter(text: str) -> tuple[FrontMatter, str]:
    """The page's front matter (YAML `---` or TOML `+++`) and the text after it."""
    match = _FRONT.match(text.replace("\r\n", "\n"))
    if not match:
        return FrontMatter(), text
    body = text.replace("\r\n", "\n")[match.end():]
    data: Any
    try:
        data = (yaml.safe_load(match.group(2)) if match.group(1) == "---"
                else tomllib.loads(match.group(2)))
    except (yaml.YAMLError, tomllib.TOMLDecodeError):
        return FrontMatter(), body  # unreadable front matter is still not content
    if not isinstance(data, dict):  # two rules around prose, not front matter
        return FrontMatter(), text
    title = str(data.get("title") or "").strip()
    date = data.get("date")
    if isinstance(date, dt.datetime):
        date = date.date()
    day = date.isoformat() if isinstance(date, dt.date) else str(date or "")[:10]
    meta = FrontMatter(title=title, date=day if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day) else "")
    meta.tags = [t for t in (page_tag(title), meta.date) if t]
    return meta, body


def page_tag(title: str) -> str | None:
    """The tag a page title gives its questions: "Week 5 Q&A" -> "week-5"."""
    week = re.search(r"\bweek\s+(\d+)\b", title, re.I)
    if week:
        return f"week-{week.group(1)}"
    return short_tag(title)


def short_tag(heading: str) -> str | None:
    """A heading of at most three words as a tag ("Chapter 4" -> "chapter-4"), else None."""
    words = re.findall(r"[a-z0-9]+", heading.lower())
    if not words or len(words) > 3:
        return None
    return "-".join(words)


# --- question and answer pairs ----------------------------------------------------------
_LIST = r"(?:(?:[-*+]|\d+[.)])\s+)?"
_EM = r"(?:\*\*|__)?"
# A line marked as a question or an answer: "Q: ...", "**Q3.** ...", "Answer: ...".
QA_MARK = re.compile(rf"^\s*{_LIST}{_EM}(Q|A|Question|Answer|Ans)\s*\d*{_EM}\s*[:.)]{_EM}\s+",
                     re.I)
# A line that is all one emphasised question: "**How many epochs?**", "1. __Why?__".
_LONE_QUESTION = re.compile(rf"^\s*{_LIST}(\*\*|__)[^*_\n]+\?\1\s*$")


def split_pairs(lines: list[str]) -> list[list[str]]:
    """The lines of one paragraph, split where a question or an answer starts.

    FAQ pages often write a question and its answer without a blank line between
    them: "Q: ...?" then "A: ...", or a bold question line then its answer. Each
    marked or emphasised question becomes a chunk of its own (with the lines that
    wrap it, up to its "?"), and each "A:" line starts one.
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    asking = False
    for line in lines:
        mark = QA_MARK.match(line)
        lone = _LONE_QUESTION.match(line)
        if mark or lone:
            if current:
                chunks.append(current)
            current = [line]
            asking = bool(lone) or bool(mark and mark.group(1).upper().startswith("Q"))
        else:
            current.append(line)
        if asking and line.rstrip(" *_").endswith("?"):
            chunks.append(current)
            current, asking = [], False
    if current:
        chunks.append(current)
    return chunks


# --- format ------------------------------------------------------------------------------
def detect_format(path: Path, text: str) -> Format:
    """html / markdown / text, by extension, then by content."""
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return "html"
    if suffix in (".md", ".markdown"):
        return "markdown"
    _, text = split_front_matter(text)
    head = text.lstrip()[:500].lower()
    if head.startswith(("<!doctype html", "<html")) or re.search(r"<(h[1-6]|p|body)\b", head):
        return "html"
    if re.search(r"^(#{1,6} \S|> \S)", text, re.M) or "```" in text:
        return "markdown"
    return "text"


# --- plain text --------------------------------------------------------------------------
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import |return\b|for .+:$|if .+:$|print\(|@\w)"
    r"|^\s*[\w.\[\]]+\s*(=|\+=|-=)\s*\S|^\s*[\w.]+\(.*\)\s*$|^\s{4,}\S"
)


def _looks_like_code(lines: list[str]) -> bool:
    return len(lines) >= 2 and sum(bool(_CODE_LINE.search(line)) for line in lines) >= \
        max(2, len(lines) * 0.6)


def text_blocks(text: str) -> list[Block]:
    """Plain text: paragraphs separated by blank lines; runs of code lines become code."""
    blocks = []
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line.rstrip() for line in para.strip("\n").split("\n") if line.strip()]
        if lines and _looks_like_code(lines):
            blocks.append(Block("code", "\n".join(lines)))
            continue
        for chunk in split_pairs(lines):
            blocks.append(Block("paragraph", " ".join(line.strip() for line in chunk)))
    return blocks


# --- Markdown ----------------------------------------------------------------------------
# A line that opens a raw HTML block (CommonMark's kinds 1-7, roughly): it runs to the
# closing tag for script/style/pre/textarea and comments, else to the next blank line.
_HTML_OPEN = re.compile(r"^ {0,3}<(/?[a-zA-Z][a-zA-Z0-9-]*|!--)(?=[\s/>]|$)")
_HTML_RAW = re.compile(r"^ {0,3}<(script|style|pre|textarea)\b", re.I)
_SHORTCODE = re.compile(r"\{\{[<%]\s*(/?)([\w-]+)([^}]*?)\s*[>%]\}\}")
_INLINE_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9-]*(\s[^<>]*)?/?>|<!--.*?-->", re.S)
# Left as they are inside converted HTML: code spans (`List<int>`) and autolinks.
_PROTECTED = re.compile(r"(`+)(.+?)\1|<https?://[^>\s]+>", re.S)


def _shortcode(match: re.Match[str]) -> str:
    """A Hugo shortcode: an embedded post or video becomes its link; others vanish."""
    closing, name, args = match.groups()
    params = dict(re.findall(r'(\w+)="([^"]*)"', args))
    bare = re.findall(r'(?:^|\s)"?([\w-]+)"?(?=\s|$)', args)
    if not closing and name == "tweet":
        user, post = params.get("user"), params.get("id") or (bare[-1] if bare else None)
        if post:
            return f"<https://twitter.com/{user or 'i'}/status/{post}>"
    if not closing and name == "youtube":
        video = params.get("id") or (bare[0] if bare else None)
        if video:
            return f"<https://www.youtube.com/watch?v={video}>"
    return ""


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


def markdown_blocks(text: str) -> list[Block]:
    """Markdown: ATX headings, blockquotes, fenced code kept whole, raw HTML converted."""
    blocks: list[Block] = []
    para: list[str] = []
    quote: list[str] = []
    lines = _SHORTCODE.sub(_shortcode, text.replace("\r\n", "\n")).split("\n")

    def flush() -> None:
        for chunk in split_pairs(para):
            converted = inline_html_to_markdown("\n".join(chunk).strip())
            if converted.strip():
                blocks.append(Block("paragraph", converted.strip()))
        para.clear()
        if quote:
            body = inline_html_to_markdown("\n".join(quote).strip())
            if body.strip():
                blocks.append(Block("quote", body.strip()))
            quote.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith(("```", "~~~")):
            flush()
            marker = line.strip()[:3]
            end = next((j for j in range(i + 1, len(lines))
                        if lines[j].strip().startswith(marker)), len(lines) - 1)
            blocks.append(Block("code", "\n".join(lines[i:end + 1])))
            i = end + 1
            continue
        if _HTML_OPEN.match(line) and not para and not quote:
            end = _html_block_end(lines, i)
            blocks.extend(html_blocks("\n".join(lines[i:end + 1])))
            i = end + 1
            continue
        heading = re.match(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        quoted = re.match(r"^ {0,3}>\s?(.*)$", line)
        if heading:
            flush()
            blocks.append(Block("heading", heading.group(2), len(heading.group(1))))
        elif quoted:
            if para:
                flush()
            quote.append(quoted.group(1))
        elif not line.strip():
            flush()
        else:
            if quote:
                flush()
            para.append(line)
        i += 1
    flush()
    return blocks


def _html_block_end(lines: list[str], start: int) -> int:
    """The last line of the raw HTML block that opens at `start`."""
    opener = lines[start]
    if opener.lstrip().startswith("<!--"):
        closing = "-->"
    elif raw := _HTML_RAW.match(opener):
        closing = f"</{raw.group(1).lower()}>"
    else:
        closing = ""
    for j in range(start, len(lines)):
        if closing and closing in lines[j].lower():
            return j
        if not closing and j > start and not lines[j].strip():
            return j - 1
    return len(lines) - 1


# --- HTML --------------------------------------------------------------------------------
# A blockquote with one of these classes is an embedded post (a tweet, a toot...), kept
# in an answer as a quoted paragraph, never read as a question.
_EMBED_CLASS = re.compile(r"tweet|toot|mastodon|bluesky|instagram|tiktok|reddit|embed|"
                          r"threads|linkedin|facebook", re.I)
# A <br> outside code, until the paragraph it breaks is split into question and answer.
_BR = "\x01"
# Inline emphasis: the same Markdown marker opens and closes it.
EMPHASIS = {"strong": "**", "b": "**", "em": "*", "i": "*"}


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

    def _flush(self) -> None:
        text = "".join(self.buf)
        self.buf = []
        if self.kind == "code":
            if text.strip():
                self.blocks.append(Block("code", "```\n" + text.strip("\n") + "\n```"))
        elif self.kind == "heading" or self.quote and self.quote[-1] == "quote":
            text = self._text(text.replace(_BR, " "))
            if text:
                self.blocks.append(Block("heading", text, self.level) if self.kind == "heading"
                                   else Block("quote", text))
        else:  # a question and its answer may share a <p>, split by <br>
            prefix = ("> " if self.quote else "") + ("- " if self.kind == "li" else "")
            for chunk in split_pairs(text.split(_BR)):
                text = self._text(" ".join(chunk))
                if text:
                    self.blocks.append(Block("paragraph", prefix + text))
        self.kind = None

    def _text(self, text: str) -> str:
        return re.sub(r"\s+", " ", text).strip() if self.collapse else text.strip()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
            return
        if self.skip:
            return
        attributes = dict(attrs)
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
            self.kind = "li" if tag == "li" else "p"
        elif tag == "br":
            self.buf.append("\n" if self.kind == "code" else _BR)
        elif tag == "iframe":
            src = attributes.get("src") or ""
            if src.startswith(("http://", "https://")):  # an embedded video: its link
                self.buf.append(f" <{src}> ")
            self.skip += 1
        elif self._inline_mark(tag):
            return
        elif tag == "a":
            href = attributes.get("href") or ""
            if href.startswith(("http://", "https://")):
                self.href = href
                self.buf.append("[")

    def _inline_mark(self, tag: str) -> bool:
        """Write the mark of a code span or emphasis, the same at either end of it.
        True when `tag` is one, or when nothing inline is marked here (code blocks and
        headings take their text plain)."""
        if tag == "code" and self.kind != "code":
            self.buf.append("`")
        elif self.kind in ("code", "heading"):
            pass
        elif tag in EMPHASIS:
            self.buf.append(EMPHASIS[tag])
        else:
            return False
        return True

    def handle_endtag(self, tag: str) -> None:
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
        elif self._inline_mark(tag):
            return
        elif tag == "a" and self.href:
            self.buf.append(f"]({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        if not self.skip:
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


def page_blocks(text: str, fmt: Format) -> list[Block]:
    """A page's body (front matter already removed) as blocks."""
    return {"text": text_blocks, "markdown": markdown_blocks, "html": html_blocks}[fmt](text)
