"""Reading a plain text page into blocks: paragraphs, code and breaks."""

from __future__ import annotations

import re

from server.review.pages.blocks import Block
from server.review.pages.pairs import split_pairs

# --- plain text --------------------------------------------------------------------------
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import |return\b|for .+:$|if .+:$|print\(|@\w)"
    r"|^\s*[\w.\[\]]+\s*(=|\+=|-=)\s*\S|^\s*[\w.]+\(.*\)\s*$|^\s{4,}\S"
)


def _looks_like_code(lines: list[str]) -> bool:
    return len(lines) >= 2 and sum(bool(_CODE_LINE.search(line)) for line in lines) >= \
        max(2, len(lines) * 0.6)


# A line of one repeated mark ("=====", "-----"): under a line it underlines it as a
# title; after a blank line it rules one part of the page off from the next (a break).
_RULE_LINE = re.compile(r"^\s*([=\-*_~])\1{2,}\s*$")


def text_blocks(text: str) -> list[Block]:
    """Plain text: paragraphs separated by blank lines (an underlined line is one of its
    own); runs of code lines become code; a rule after a blank line is a break."""
    blocks = []
    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        lines = [line.rstrip() for line in para.strip("\n").split("\n") if line.strip()]
        if lines and _RULE_LINE.match(lines[0]):
            blocks.append(Block("break", ""))
        groups: list[list[str]] = [[]]
        for line in lines:
            if _RULE_LINE.match(line):
                groups.append([])
            else:
                groups[-1].append(line)
        for group in filter(None, groups):
            blocks.extend(_text_paragraph(group))
    return blocks


def _text_paragraph(lines: list[str]) -> list[Block]:
    """One paragraph of plain text: code, or its question and answer chunks."""
    if _looks_like_code(lines):
        return [Block("code", "\n".join(lines))]
    return [Block("paragraph", " ".join(line.strip() for line in chunk))
            for chunk in split_pairs(lines)]
