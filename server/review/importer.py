"""`askta import FILE`: a week's Q&A page (plain text, Markdown or HTML) -> draft entries.

The page is split into blocks (headings, paragraphs, code). A question is a
heading or a short paragraph that ends with "?"; everything up to the next
question or section heading is its answer. Section headings ("Chapter 4")
become tags. Each question becomes a draft entry in kb/ for an instructor to
review; questions the knowledge base already has are skipped, never duplicated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from indexer.kb import KnowledgeBase, KnowledgeBaseError, normalize_question
from indexer.schema import Entry, Status, slugify

Format = Literal["text", "markdown", "html"]
MAX_QUESTION_WORDS = 20  # longer paragraphs ending in "?" are part of an answer
MAX_HEADING_WORDS = 8


@dataclass
class Block:
    """One block of a page: a heading (with its level), a paragraph, or code."""

    kind: Literal["heading", "paragraph", "code"]
    text: str
    level: int = 0


@dataclass
class ImportedQuestion:
    """A question found on the page, its answer in Markdown, and the section it was in."""

    question: str
    answer: str
    tags: list[str] = field(default_factory=list)


# --- splitting a page into blocks --------------------------------------------------------
def detect_format(path: Path, text: str) -> Format:
    """html / markdown / text, by extension, then by content."""
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return "html"
    if suffix in (".md", ".markdown"):
        return "markdown"
    head = text.lstrip()[:500].lower()
    if head.startswith(("<!doctype html", "<html")) or re.search(r"<(h[1-6]|p|body)\b", head):
        return "html"
    if re.search(r"^#{1,6} \S", text, re.M) or "```" in text:
        return "markdown"
    return "text"


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
        if not lines:
            continue
        if _looks_like_code(lines):
            blocks.append(Block("code", "\n".join(lines)))
        else:
            blocks.append(Block("paragraph", " ".join(line.strip() for line in lines)))
    return blocks


def markdown_blocks(text: str) -> list[Block]:
    """Markdown: ATX headings, fenced code kept whole, other paragraphs as written."""
    blocks: list[Block] = []
    para: list[str] = []
    fence: list[str] | None = None

    def flush() -> None:
        if para:
            blocks.append(Block("paragraph", "\n".join(para).strip()))
            para.clear()

    for line in text.replace("\r\n", "\n").split("\n"):
        if fence is not None:
            fence.append(line)
            if line.strip().startswith("```") and len(fence) > 1:
                blocks.append(Block("code", "\n".join(fence)))
                fence = None
            continue
        if line.strip().startswith("```"):
            flush()
            fence = [line]
            continue
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading:
            flush()
            blocks.append(Block("heading", heading.group(2), len(heading.group(1))))
        elif not line.strip():
            flush()
        else:
            para.append(line)
    flush()
    if fence is not None:
        blocks.append(Block("code", "\n".join(fence)))
    return blocks


class _HTMLBlocks(HTMLParser):
    """Headings, paragraphs, list items and <pre> of an HTML page, as Markdown-ish blocks."""

    BLOCK = {"p", "li", "blockquote", "dt", "dd", "div", "td"}
    SKIP = {"script", "style", "head", "nav", "footer", "template", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.kind: str | None = None
        self.level = 0
        self.skip = 0
        self.href: str | None = None
        self.link_text: list[str] = []

    def _flush(self) -> None:
        text = "".join(self.buf)
        self.buf = []
        if self.kind == "code":
            if text.strip():
                self.blocks.append(Block("code", "```\n" + text.strip("\n") + "\n```"))
        else:
            text = re.sub(r"\s+", " ", text).strip()
            if text:
                if self.kind == "heading":
                    self.blocks.append(Block("heading", text, self.level))
                else:
                    prefix = "- " if self.kind == "li" else ""
                    self.blocks.append(Block("paragraph", prefix + text))
        self.kind = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
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
        elif tag in self.BLOCK and self.kind != "code":
            self._flush()
            self.kind = "li" if tag == "li" else "p"
        elif tag == "br":
            self.buf.append("\n" if self.kind == "code" else " ")
        elif tag == "code" and self.kind != "code":
            self.buf.append("`")
        elif tag in ("strong", "b") and self.kind not in ("code", "heading"):
            self.buf.append("**")
        elif tag in ("em", "i") and self.kind not in ("code", "heading"):
            self.buf.append("*")
        elif tag == "a" and self.kind not in ("code", "heading"):
            href = dict(attrs).get("href") or ""
            if href.startswith(("http://", "https://")):
                self.href = href
                self.buf.append("[")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if re.fullmatch(r"h[1-6]", tag) or tag == "pre" or (tag in self.BLOCK
                                                              and self.kind != "code"):
            self._flush()
        elif tag == "code" and self.kind != "code":
            self.buf.append("`")
        elif tag in ("strong", "b") and self.kind not in ("code", "heading"):
            self.buf.append("**")
        elif tag in ("em", "i") and self.kind not in ("code", "heading"):
            self.buf.append("*")
        elif tag == "a" and self.href:
            self.buf.append(f"]({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_blocks(text: str) -> list[Block]:
    """HTML: h1-h6 headings, p/li paragraphs, pre code."""
    parser = _HTMLBlocks()
    parser.feed(text)
    parser.close()
    return parser.blocks


# --- finding the questions ---------------------------------------------------------------
def _plain(text: str) -> str:
    """Markdown emphasis and list markers removed, spaces collapsed."""
    text = re.sub(r"^\s*([-*+]|\d+[.)])\s+", "", text)
    text = re.sub(r"(\*\*|__|\*|_)(.+?)\1", r"\2", text)
    return re.sub(r"\s+", " ", text).strip()


def _is_question(block: Block) -> bool:
    if block.kind == "code" or "\n" in block.text.strip() and block.kind == "paragraph":
        return False
    text = _plain(block.text)
    return text.endswith("?") and 1 < len(text.split()) <= MAX_QUESTION_WORDS


def _is_section(block: Block, fmt: Format) -> bool:
    if block.kind == "heading":
        return True
    if fmt != "text" or block.kind != "paragraph":
        return False
    text = block.text.strip()
    # A short line with no closing punctuation, like "Chapter 4" or "Reflections".
    return len(text.split()) <= MAX_HEADING_WORDS and not re.search(r"[.?!:;,…)]$", text) \
        and not text.startswith(("-", "*", "`"))


def _tag(heading: str) -> str | None:
    words = re.findall(r"[a-z0-9]+", heading.lower())
    if not words or len(words) > 3:
        return None
    return "-".join(words)


def find_questions(blocks: list[Block], fmt: Format) -> list[ImportedQuestion]:
    """Questions and their answers, in page order."""
    found: list[ImportedQuestion] = []
    current: ImportedQuestion | None = None
    answer: list[str] = []
    page_tag: str | None = None
    section_tag: str | None = None
    seen_title = False

    def finish() -> None:
        nonlocal current
        if current is not None:
            current.answer = "\n\n".join(answer).strip()
            found.append(current)
        current = None
        answer.clear()

    for block in blocks:
        if _is_question(block):
            finish()
            tags = [t for t in (page_tag, section_tag) if t]
            current = ImportedQuestion(_plain(block.text), "", list(dict.fromkeys(tags)))
            continue
        if _is_section(block, fmt):
            finish()
            heading = _plain(block.text)
            week = re.search(r"\bweek\s+(\d+)\b", heading, re.I)
            if not seen_title:
                seen_title = True
                if week:
                    page_tag = f"week-{week.group(1)}"
                    continue
            section_tag = _tag(heading)
            continue
        if current is not None:
            answer.append(block.text if block.kind != "code" or block.text.startswith("```")
                          else "```python\n" + block.text + "\n```")
    finish()
    return found


def parse_document(text: str, fmt: Format) -> list[ImportedQuestion]:
    """Every question on a page, with its answer (Markdown) and tags."""
    blocks = {"text": text_blocks, "markdown": markdown_blocks, "html": html_blocks}[fmt](text)
    return find_questions(blocks, fmt)


# --- writing draft entries ---------------------------------------------------------------
@dataclass
class ImportResult:
    """What an import wrote and what it skipped, and why."""

    created: list[dict[str, str]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


class Importer:
    """Turns imported questions into draft entries of a knowledge base."""

    def __init__(self, kb: KnowledgeBase):
        self.kb = kb

    def plan(self, questions: list[ImportedQuestion]) -> tuple[list[Entry], list[dict[str, str]]]:
        """The draft entries to write, and the questions skipped (already in the KB)."""
        current = self.kb.entries  # one copy: the KB may change while this plans
        known = {normalize_question(q): e.id for e in current.values() for q in e.phrasings}
        used_ids = set(current) | {p.stem for p in self.kb.kb_dir.glob("*.yaml")}
        entries: list[Entry] = []
        skipped: list[dict[str, str]] = []
        for q in questions:
            key = normalize_question(q.question)
            if key in known:
                skipped.append({"question": q.question,
                                "reason": f"already in the knowledge base as {known[key]}"})
                continue
            base = slugify(q.question, fallback="imported-question")
            entry_id, n = base, 2
            while entry_id in used_ids:
                entry_id, n = f"{base}-{n}", n + 1
            try:
                entry = Entry(id=entry_id, question=q.question[:300], answer=q.answer,
                              tags=q.tags, demo=None, status=Status.draft)
            except ValidationError as e:  # e.g. a control character pasted into the page
                skipped.append({"question": q.question, "reason": "; ".join(
                    f"{'.'.join(str(x) for x in err['loc'])}: "
                    f"{err['msg'].removeprefix('Value error, ')}" for err in e.errors())})
                continue
            used_ids.add(entry_id)
            known[key] = entry_id
            entries.append(entry)
        return entries, skipped

    def run(self, questions: list[ImportedQuestion], *, dry_run: bool = False) -> ImportResult:
        """Write a draft entry per new question (atomically, one file each)."""
        entries, skipped = self.plan(questions)
        result = ImportResult(skipped=skipped)
        for entry in entries:
            if not dry_run:
                try:
                    self.kb.save_entry(entry, create=True)
                except KnowledgeBaseError as e:
                    result.skipped.append({"question": entry.question, "reason": str(e)})
                    continue
            result.created.append({"id": entry.id, "question": entry.question,
                                   "path": self.kb.display(self.kb.path_of(entry.id))})
        return result
