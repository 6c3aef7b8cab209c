"""A page's blocks and what is read apart from them: the Block and its kinds, the
formats, the front matter (its title and date as tags) and which format a page is in.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Format = Literal["text", "markdown", "html"]
BlockKind = Literal["heading", "paragraph", "quote", "code", "note", "question", "break"]


@dataclass
class Block:
    """One block of a page: a heading (with its level), a paragraph, a quote, code, a note,
    a marked question or a break (see the module's docstring)."""

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
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError, RecursionError):
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
