"""Where a question or an answer starts inside one paragraph: the lines a page marks
("Q:", "A:", "Student:", "TA:"), emphasised questions, list items that ask, definitions.
"""

from __future__ import annotations

import re
from typing import Literal

Mark = Literal["question", "answer"]

# --- question and answer pairs ----------------------------------------------------------
_LIST = r"(?:(?:[-*+]|\d+[.)])\s+)?"
_EM = r"(?:\*\*|__)?"
# A line marked as a question or an answer: "Q: ...", "**Q3.** ...", "Answer: ...", and in
# an office hours digest "Student: ..." and "TA: ..." (those with a colon only).
_QA_MARK = re.compile(rf"^\s*{_LIST}{_EM}(?:(Q|A|Question|Answer|Ans)\s*\d*{_EM}\s*[:.)]"
                      rf"|(Student|TA|Instructor)\s*{_EM}\s*:){_EM}\s+", re.I)
# A line that is all one emphasised question: "**How many epochs?**", "1. __Why?__".
_LONE_QUESTION = re.compile(rf"^\s*{_LIST}(\*\*|__)[^*_\n]+\?\1\s*$")
# A line that is all one emphasised phrase, asking or not: "**Dropout vs weight decay**".
BOLD_LINE = re.compile(rf"^\s*{_LIST}(\*\*|__)[^*_\n]+\1\s*$")
# A list item's first line: "- ...", "2) ...".
LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+")
# A list item that is one question: "2) Why?", "- Why?" (its answer on the lines below).
_ITEM_QUESTION = re.compile(r"^\s*([-*+]|\d+[.)])\s+\S.*\?\s*$")
# A definition (kramdown, Pandoc): "Why?" on one line, ": Because." on the next.
_DEFINITION = re.compile(r"^ {0,3}:[ \t]+(?=\S)")
# A line that opens with an emphasised question and goes on with its answer:
# "**How long should the report be?** Six pages." (group 1 asks, group 3 answers).
_QUESTION_THEN_ANSWER = re.compile(rf"^(\s*{_LIST}(\*\*|__)[^*_\n]+\?\2)[ \t]+(\S.*)$")


# The answer mark after a marked question on the same line: "Q: Why? A: Because."
_INLINE_ANSWER = re.compile(rf"\?{_EM}\s+(?={_EM}(?:A|Answer|Ans)\s*{_EM}\s*[:.]{_EM}\s)", re.I)


def read_mark(text: str) -> tuple[Mark | None, str]:
    """The mark a line opens with ("question" for "Q:" or "Student:", "answer" for "A:"
    or "TA:", None for none) and the text after it (all of it without a mark)."""
    mark = _QA_MARK.match(text)
    if mark is None:
        return None, text
    word = (mark.group(1) or mark.group(2)).lower()
    return "question" if word.startswith("q") or word == "student" else "answer", \
        text[mark.end():]


def _item_question(lines: list[str], n: int) -> bool:
    """Whether line `n` is a list item that asks, with no sibling item right above or
    below it (a list of things to check is not a list of questions)."""
    if not _ITEM_QUESTION.match(lines[n]):
        return False
    indent = len(lines[n]) - len(lines[n].lstrip())
    above = LIST_ITEM.match(lines[n - 1]) if n > 0 else None
    below = LIST_ITEM.match(lines[n + 1]) if n + 1 < len(lines) else None
    return not (above and len(above.group(1)) == indent) and \
        not (below and len(below.group(1)) <= indent)


def split_pairs(lines: list[str]) -> list[list[str]]:
    """The lines of one paragraph, split where a question or an answer starts.

    FAQ pages often write a question and its answer without a blank line between
    them: "Q: ...?" then "A: ...", a bold question line or list item then its answer
    (even on the same line: "**Why?** Because."), or a term then its ": definition".
    Each marked or emphasised question becomes a chunk of its own (with the lines that
    wrap it, up to its "?"), and each "A:" line or definition starts one.
    """
    chunks: list[list[str]] = []
    current: list[str] = []
    asking = False
    for n, line in enumerate(lines):
        inline = _QUESTION_THEN_ANSWER.match(line)
        if inline:  # the question is a chunk of its own, its answer starts the next one
            chunks.extend(c for c in (current, [inline.group(1)]) if c)
            current, asking = [inline.group(3)], False
            continue
        definition = _DEFINITION.match(line)
        if definition and current:  # the term above is a chunk of its own
            chunks.append(current)
            current, asking = [line[definition.end():]], False
            continue
        mark, _ = read_mark(line)
        answer = _INLINE_ANSWER.search(line) if mark == "question" else None
        if answer:  # "Q: Why? A: Because.": the question, then its answer
            chunks.extend(c for c in (current, [line[:answer.start() + 1]]) if c)
            current, asking = [line[answer.end():]], False
            continue
        lone = _LONE_QUESTION.match(line) or _item_question(lines, n)
        if mark or lone:
            if current:
                chunks.append(current)
            current = [line]
            asking = bool(lone) or mark == "question"
        else:
            current.append(line)
        if asking and line.rstrip(" *_").endswith("?"):
            chunks.append(current)
            current, asking = [], False
    if current:
        chunks.append(current)
    return chunks
