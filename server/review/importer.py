"""`askta import FILE`: a week's Q&A page (plain text, Markdown or HTML) -> draft entries.

server/review/pages/ splits the page into blocks; this module finds the
questions among them. A question is a heading or a short paragraph that ends
with "?", one the page marks ("Q:", "Student:", a question admonition, a FAQ
table's row, `class="question"`), and under a Q&A section (a heading such as
"Q&A" or "Questions", or a page whose title says Q&A) also a heading that is a
statement ("I'm still fuzzy about X.") or a topic ("X vs Y"), and a blockquote
(`> ...`) followed by its answer. Everything up to the next question or section
heading is its answer, unless a break (a rule, the end of an admonition), a
closing line ("Best,") or a line that introduces the next question ends it first;
prose between a section heading and its first question is no answer. Section headings
("Chapter 4") and the page's title and date become tags. Each question becomes a
draft entry in kb/ for an instructor to review; questions the knowledge base
already has are skipped, never duplicated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ValidationError

from indexer.kb import KnowledgeBase, KnowledgeBaseError, normalize_question
from indexer.schema import Entry, Status, slugify
from server.review.pages import (
    BOLD_LINE,
    LIST_ITEM,
    Block,
    Format,
    FrontMatter,
    detect_format,
    page_blocks,
    page_tag,
    read_mark,
    short_tag,
    split_front_matter,
)

__all__ = ["Format", "ImportedQuestion", "Importer", "ImportResult", "PageError", "detect_format",
           "find_questions", "first_line", "parse_document"]

MAX_QUESTION_WORDS = 20  # longer paragraphs ending in "?" are part of an answer
MAX_MARKED_WORDS = 80  # a question the page marks ("Q: ...") may be a student's long one
MAX_HEADING_WORDS = 8

# A heading that opens a Q&A section: everything under it (up to the next heading of
# its level) may hold statement and topic questions and quoted ones.
_QA_SECTION = re.compile(r"\bQ\s*(?:&|and)\s*A\b|\bFAQs?\b|\bquestions\b", re.I)
# Headings that name a part of the page, never a question, even under a Q&A section.
_STRUCTURAL = re.compile(
    r"^(chapter|week|unit|part|lecture|lab|module|section|day|session)\s*\d+\b"
    r"|^(announcements?|logistics|reminders?|reflections?|notes|resources|references|links|"
    r"schedule|administrivia|misc(ellaneous)?|summary|introduction|overview|updates?|"
    r"looking ahead|next week|coming up|due (this|next) week)$", re.I)
# Sections that hold no questions even on a Q&A page: what is under them is news.
_NEVER_QA = re.compile(
    r"^(announcements?|logistics|reminders?|resources|references|links|schedule|"
    r"administrivia|looking ahead|next week|coming up|due (this|next) week|deadlines?|"
    r"homework|housekeeping)$", re.I)
# On a plain-text page only a topic line reads as a question ("X vs Y", "Relationship
# to Y"): any other short line there may be a section name or a terse answer.
_TOPIC = re.compile(r"\b(vs\.?|versus|relationship|difference|compared)\b", re.I)


# An emoji that decorates a question ("❓ Why...?"), and a short aside after its "?"
# ("Why...? (asked 3 times)", "Why...? [lecture 4]"): neither is part of the question.
_EMOJI_BEFORE = re.compile("^[\u2600-\u27bf\U0001f300-\U0001faff\ufe0f]+\\s*")
_ASIDE_AFTER_QUESTION = re.compile(r"\?\s*(\([^()]{1,40}\)|\[[^\[\]]{1,40}\])$")

# A closing line of an email or a digest ("Best,", "Good luck!", "See you next week!"): the
# answer before it ends there, and what follows it up to the next question is no answer.
_CLOSING = re.compile(
    r"^((best|kind|warm)\s+)?(regards|wishes)[,!.]?$|^(best|cheers|sincerely|thanks|thank you)"
    r"( all| everyone| so much)?[,!.]?$|^(good luck|see you|happy \w+ing)\b[^?]*[!.]$", re.I)

Role = Literal["question", "section", "content"]


@dataclass
class ImportedQuestion:
    """A question found on the page, its answer in Markdown, and the section it was in."""

    question: str
    answer: str
    tags: list[str] = field(default_factory=list)


def first_line(answer: str) -> str:
    """An answer's first non-empty line, as `askta import --dry-run` shows it."""
    return next((line.strip() for line in answer.splitlines() if line.strip()), "")


# --- finding the questions ---------------------------------------------------------------
def _plain(text: str) -> str:
    """Markdown emphasis, list markers and a "Q:" mark removed, spaces collapsed."""
    return _marked(text)[0]


def _marked(text: str) -> tuple[str, bool]:
    """The text as `_plain` gives it, and whether the page marked it as a question."""
    mark, after = read_mark(text)
    asked = mark == "question"
    if asked:
        text = after
    text = LIST_ITEM.sub("", text, count=1)
    text = re.sub(r"(\*\*|__|\*|_)(.+?)\1", r"\2", text)
    text = re.sub(r"\s+", " ", text).strip().strip("*_ ")
    return _ASIDE_AFTER_QUESTION.sub("?", _EMOJI_BEFORE.sub("", text)), asked


def _is_question(block: Block) -> bool:
    """A heading, paragraph or quote that asks: short and ending with "?", or marked
    as a question by the page ("Q: ...", "Question 3: ...", a question admonition),
    then perhaps longer."""
    if block.kind in ("code", "note", "break") or \
            "\n" in block.text.strip() and block.kind == "paragraph":
        return False
    text, asked = _marked(block.text)
    if asked or block.kind == "question":
        return 1 < len(text.split()) <= MAX_MARKED_WORDS
    return text.endswith("?") and 1 < len(text.split()) <= MAX_QUESTION_WORDS


def _unmark_answer(text: str) -> str:
    """An answer's first paragraph without its "A:" mark."""
    mark, after = read_mark(text)
    return after if mark == "answer" else text


def _is_heading(block: Block, fmt: Format) -> bool:
    """A heading; on a plain-text page, a short line with no closing punctuation."""
    if block.kind == "heading":  # unless it is prose a stray "---" underlined
        return len(_plain(block.text).split()) <= MAX_QUESTION_WORDS
    if fmt != "text" or block.kind != "paragraph" or read_mark(block.text)[0]:
        return False  # "A: Upload it to Canvas" is an answer, however short
    text = block.text.strip()
    # A short line with no closing punctuation, like "Chapter 4" or "Reflections".
    return len(text.split()) <= MAX_HEADING_WORDS and not re.search(r"[.?!:;,…)]$", text) \
        and not text.startswith(("-", "*", "`"))


def _merge_quotes(blocks: list[Block]) -> list[Block]:
    """Consecutive quote blocks as one (a question quoted over several paragraphs)."""
    merged: list[Block] = []
    for block in blocks:
        if block.kind == "quote" and merged and merged[-1].kind == "quote":
            merged[-1] = Block("quote", merged[-1].text + "\n\n" + block.text)
        else:
            merged.append(block)
    return merged


def _opens_with_quote(body: list[Block]) -> bool:
    """The body starts with a quote, perhaps after one line of prose ("Some stragglers:")."""
    if body and body[0].kind == "paragraph" and body[0].text.rstrip().endswith(":"):
        body = body[1:]
    return bool(body) and body[0].kind == "quote"


def _roles(blocks: list[Block], fmt: Format, page_is_qa: bool) -> tuple[list[Role], list[bool]]:
    """Each block's role, and whether it lies under a Q&A section."""
    heads = [i for i, b in enumerate(blocks) if _is_heading(b, fmt)]
    levels = {i: blocks[i].level if fmt != "text" else (1 if n == 0 else 2)
              for n, i in enumerate(heads)}
    roles: list[Role] = ["content"] * len(blocks)
    in_qa = [page_is_qa] * len(blocks)
    # the open sections: (level, True for a Q&A section, False for one that never is,
    # such as "Announcements", None for one that is what the section around it is)
    scopes: list[tuple[int, bool | None]] = []

    def under_qa() -> bool:
        return next((qa for _, qa in reversed(scopes) if qa is not None), page_is_qa)

    for n, i in enumerate(heads):
        level = levels[i]
        while scopes and scopes[-1][0] >= level:
            scopes.pop()
        qa = under_qa()
        end = heads[n + 1] if n + 1 < len(heads) else len(blocks)
        block = blocks[i]
        text = _plain(block.text)
        if _is_question(block):
            roles[i] = "question"
        elif qa and _asks(text, blocks[i + 1:end], fmt) and not (
                end < len(blocks) and levels[end] > level):
            roles[i] = "question"  # a statement or topic heading, with its answer below
        else:
            roles[i] = "section"
            scopes.append((level, True if _QA_SECTION.search(text)
                           else False if _NEVER_QA.match(text) else None))
        inside = under_qa()
        for j in range(i, end):
            in_qa[j] = inside
    for i, block in enumerate(blocks):
        if roles[i] == "content" and (
                _is_question(block) and not _in_checklist(blocks, i) or
                in_qa[i] and _bold_statement(blocks, i, fmt) and roles[i - 1] != "question"):
            roles[i] = "question"
    return roles, in_qa


def _in_checklist(blocks: list[Block], i: int) -> bool:
    """A plain list item ending with "?" next to another one: a list of things to check
    ("- Is the temperature too high?") inside an answer, not questions of their own."""
    def asking_item(j: int) -> bool:
        if not 0 <= j < len(blocks) or blocks[j].kind != "paragraph":
            return False
        text = blocks[j].text
        return bool(LIST_ITEM.match(text)) and not read_mark(text)[0] and \
            not BOLD_LINE.match(text) and _plain(text).endswith("?")
    return asking_item(i) and (asking_item(i - 1) or asking_item(i + 1))


def _bold_statement(blocks: list[Block], i: int, fmt: Format) -> bool:
    """A paragraph that is one bold line ("**I'm still fuzzy about X.**") with its answer
    below: under a Q&A section, a question in the way a statement heading is one."""
    block = blocks[i]
    if block.kind != "paragraph" or not BOLD_LINE.match(block.text):
        return False
    text = _plain(block.text)
    after = blocks[i + 1] if i + 1 < len(blocks) else None
    return not text.endswith(":") and len(text.split()) <= MAX_QUESTION_WORDS and \
        after is not None and after.kind in ("paragraph", "code") and \
        not BOLD_LINE.match(after.text) and not _is_question(after) and _asks(text, [], fmt)


def _asks(text: str, body: list[Block], fmt: Format) -> bool:
    """Whether a heading under a Q&A section is a question rather than a section name."""
    if _QA_SECTION.search(text) or _STRUCTURAL.match(text) or not re.search(r"[^\W\d_]", text):
        return False
    if len(text.split()) < 2:  # "Homework", "Dropout": more likely a section than a question
        return False
    if fmt == "text" and not _TOPIC.search(text):
        return False
    return not any(_is_question(b) for b in body) and not _opens_with_quote(body)


def _ends_answer(blocks: list[Block], roles: list[Role], i: int, answered: bool) -> bool:
    """A block that ends the answer before it and belongs to none: a break, a line that
    introduces the next question ("More from the queue:"), or, after an answer, a
    closing line."""
    block = blocks[i]
    if block.kind == "break":
        return True
    if block.kind != "paragraph":
        return False
    text = _plain(block.text)
    if text.endswith(":") and i + 1 < len(blocks) and roles[i + 1] == "question":
        return True
    return answered and bool(_CLOSING.match(text))


def find_questions(blocks: list[Block], fmt: Format,
                   front: FrontMatter | None = None) -> list[ImportedQuestion]:
    """Questions and their answers, in page order."""
    front = front or FrontMatter()
    blocks = _merge_quotes(blocks)
    roles, in_qa = _roles(blocks, fmt, bool(_QA_SECTION.search(front.title)))
    found: list[ImportedQuestion] = []
    current: ImportedQuestion | None = None
    current_kind = ""
    answer: list[str] = []
    page_tags = list(front.tags)
    section_tag: str | None = None
    seen_title = False

    def finish() -> None:
        nonlocal current
        if current is not None:
            current.answer = "\n\n".join(answer).strip()
            found.append(current)
        current = None
        answer.clear()

    def start(question: str, kind: str) -> None:
        nonlocal current, current_kind
        finish()
        tags = [t for t in (*page_tags, section_tag) if t]
        current, current_kind = ImportedQuestion(question, "", list(dict.fromkeys(tags))), kind

    for i, (block, role, qa) in enumerate(zip(blocks, roles, in_qa, strict=True)):
        if role == "content" and _ends_answer(blocks, roles, i, bool(answer)):
            finish()
            current_kind = ""
            continue
        if block.kind == "quote" and qa and current_kind not in ("heading", "question") or \
                block.kind == "quote" and role == "question":
            start(_plain(block.text), "quote")  # a quoted question; its answer follows
            continue
        if role == "question":
            start(_plain(block.text), block.kind)
            continue
        if role == "section":
            finish()
            current_kind = ""
            heading = _plain(block.text)
            if not seen_title:
                seen_title = True
                tag = page_tag(heading) if re.search(r"\bweek\s+\d+\b", heading, re.I) else None
                if tag:
                    page_tags = list(dict.fromkeys([tag, *page_tags]))
                    continue
            section_tag = short_tag(heading)
            continue
        if current is not None:
            answer.append(_markdown(block) if answer else _unmark_answer(_markdown(block)))
    finish()
    return found


def _markdown(block: Block) -> str:
    """A block of an answer as Markdown."""
    if block.kind in ("quote", "note"):
        return "\n".join(f"> {line}".rstrip() for line in block.text.split("\n"))
    if block.kind == "code" and not block.text.lstrip().startswith(("```", "~~~")):
        return "```python\n" + block.text + "\n```"
    return block.text


class PageError(ValueError):
    """A page that cannot be read, with what to do about it."""


def parse_document(text: str, fmt: Format) -> list[ImportedQuestion]:
    """Every question on a page, with its answer (Markdown) and tags."""
    front, body = split_front_matter(text)
    try:
        return find_questions(page_blocks(body, fmt), fmt, front)
    except RecursionError:  # admonitions or directives nested hundreds deep
        raise PageError("the page nests its blocks (admonitions, directives) too deeply to "
                        "read; flatten them") from None


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
                                   "path": self.kb.display(self.kb.path_of(entry.id)),
                                   "first_line": first_line(entry.answer)})
        return result
