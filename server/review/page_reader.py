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
# A line marked as a question or an answer: "Q: ...", "**Q3.** ...", "Answer: ...", and in
# an office hours digest "Student: ..." and "TA: ..." (those with a colon only).
QA_MARK = re.compile(rf"^\s*{_LIST}{_EM}(?:(Q|A|Question|Answer|Ans)\s*\d*{_EM}\s*[:.)]"
                     rf"|(Student|TA|Instructor)\s*{_EM}\s*:){_EM}\s+", re.I)
# A line that is all one emphasised question: "**How many epochs?**", "1. __Why?__".
_LONE_QUESTION = re.compile(rf"^\s*{_LIST}(\*\*|__)[^*_\n]+\?\1\s*$")
# A list item's first line: "- ...", "2) ...".
LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d+[.)])\s+")
# A list item that is one question: "2) Why?", "- Why?" (its answer on the lines below).
_ITEM_QUESTION = re.compile(r"^\s*([-*+]|\d+[.)])\s+\S.*\?\s*$")
# A definition (kramdown, Pandoc): "Why?" on one line, ": Because." on the next.
_DEFINITION = re.compile(r"^ {0,3}:[ \t]+(?=\S)")
# A line that opens with an emphasised question and goes on with its answer:
# "**How long should the report be?** Six pages." (group 1 asks, group 3 answers).
_QUESTION_THEN_ANSWER = re.compile(rf"^(\s*{_LIST}(\*\*|__)[^*_\n]+\?\2)[ \t]+(\S.*)$")


def marks_question(mark: re.Match[str]) -> bool:
    """Whether a QA_MARK match marks a question ("Q:", "Student:"), not an answer."""
    word = (mark.group(1) or mark.group(2)).lower()
    return word.startswith("q") or word == "student"


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
        mark = QA_MARK.match(line)
        lone = _LONE_QUESTION.match(line) or _item_question(lines, n)
        if mark or lone:
            if current:
                chunks.append(current)
            current = [line]
            asking = bool(lone) or bool(mark and marks_question(mark))
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


# Jekyll's Liquid: a comment block, a highlight block's tags and any other tag (on one line).
_LIQUID_COMMENT = re.compile(r"\{%-?\s*comment\s*-?%\}.*?\{%-?\s*endcomment\s*-?%\}", re.S)
_LIQUID_HIGHLIGHT = re.compile(r"\{%-?\s*(end)?highlight\b\s*(\w*)[^%\n]*%\}")
_LIQUID_TAG = re.compile(r"\{%[^\n]*?%\}")
# Liquid output, what the site fills in and the page never says: "{{ site.baseurl }}",
# "{{page.url}}" (a space after the braces, or a dotted name; "{{x}}" may be LaTeX).
_LIQUID_OUTPUT = re.compile(r"\{\{-?(?:\s[^{}]*|[^{}\s]*\.[^{}]*)\}\}")
# A link whose target was all Liquid output: "[the tips]()".
_EMPTY_LINK = re.compile(r"\[([^\]]*)\]\(\s*\)")
# A line of an indented code block: four spaces or a tab, then something.
_INDENTED = re.compile(r"^(    |\t)\s*\S")
# A setext heading's underline under a paragraph: "===" for level 1, "---" for level 2.
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
# A thematic break (---, * * *, ___) where no paragraph is open: it ends an answer.
_BREAK = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
# kramdown's attributes: a line of its own ("{: .faq}"), a heading's id ("## Why? {#why}").
_ATTRIBUTES = re.compile(r"^ {0,3}\{:[^}]*\}[ \t]*$")
_HEADING_ID = re.compile(r"\s*\{#[\w-]+[^}]*\}$")
# A fenced div's opening or closing line (Pandoc, Quarto, Docusaurus: "::: {.callout-note}",
# ":::tip", ":::"): what it holds is read as if it were not there.
_FENCED_DIV = re.compile(r"^ {0,3}:{3,}.*$")
# A GitHub alert: "> [!NOTE]" opens a quote that is an aside, never a question.
_CALLOUT = re.compile(r"^\[!(note|tip|important|warning|caution)\][ \t]*\n?", re.I)
# An MkDocs admonition, "!!! note" or a collapsible "??? question "Why?"": its body is
# the lines indented below it. The question types hold a question and its answer.
_ADMONITION = re.compile(r'^ {0,3}(?:!!!|\?\?\?\+?)[ \t]*([\w-]+)(?:[ \t]+"([^"]*)")?[ \t]*$')
_QUESTION_ADMONITIONS = {"question", "help", "faq"}
# A MyST directive (Jupyter Book): "```{dropdown} Why?" or ":::{note}" up to its closing
# fence; the options at the top of its body (":open:") are for the site.
_DIRECTIVE = re.compile(r"^ {0,3}(`{3,}|:{3,})\{([\w-]+)\}(.*)$")
_DIRECTIVE_OPTION = re.compile(r"^ {0,3}:[\w-]+:")
_CODE_DIRECTIVES = {"code-cell", "code-block", "code", "sourcecode"}
# A table's delimiter row, under its header: | --- | :-: |.
_TABLE_DELIMITER = re.compile(r"^ {0,3}\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)+\|?\s*$")
# The header cells of a FAQ table: questions in the first column, answers in the second.
_QUESTION_HEADER = re.compile(r"^(q|questions?|faq)$", re.I)
_ANSWER_HEADER = re.compile(r"^(a|answers?|responses?)$", re.I)


def _liquid(text: str) -> str:
    """Jekyll's Liquid tags as the site shows them: a highlight block becomes fenced code;
    comments and other tags ({% include %}, {% if %}) vanish, the text between kept."""
    text = _LIQUID_COMMENT.sub("", text)
    text = _LIQUID_HIGHLIGHT.sub(lambda m: "```" + ("" if m.group(1) else m.group(2)), text)
    return _LIQUID_TAG.sub("", text)


def _without_liquid_output(text: str) -> str:
    """Prose without Liquid output ({{ site.baseurl }}); a link left without a target
    becomes its text."""
    return _EMPTY_LINK.sub(r"\1", _LIQUID_OUTPUT.sub("", text))


def _prose(text: str) -> str:
    """A paragraph or quote's Markdown source as an answer may show it."""
    return inline_html_to_markdown(_without_liquid_output(text).strip()).strip()


def markdown_blocks(text: str) -> list[Block]:
    """Markdown: ATX and setext headings, blockquotes and callouts, thematic breaks, fenced
    code, admonitions and FAQ tables kept whole, raw HTML converted, Liquid dropped."""
    blocks: list[Block] = []
    para: list[str] = []
    quote: list[str] = []
    lines = _liquid(_SHORTCODE.sub(_shortcode, text.replace("\r\n", "\n"))).split("\n")

    def flush() -> None:
        for chunk in split_pairs(para):
            converted = _prose("\n".join(chunk))
            if converted:
                blocks.append(Block("paragraph", converted))
        para.clear()
        if quote:
            body = _prose("\n".join(quote))
            if body:
                blocks.append(_quote_block(body))
            quote.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        in_list = bool(blocks) and blocks[-1].kind == "paragraph" and \
            bool(LIST_ITEM.match(blocks[-1].text))
        whole = _whole_block(lines, i, in_paragraph=bool(para or quote), in_list=in_list)
        if whole:
            flush()
            found, i = whole
            blocks.extend(found)
            continue
        heading = re.match(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        quoted = re.match(r"^ {0,3}>\s?(.*)$", line)
        setext = _SETEXT.match(line)
        if setext and para and not LIST_ITEM.match(para[0]):
            text = " ".join(_prose("\n".join(para)).split())
            para.clear()
            blocks.append(Block("heading", text, 1 if setext.group(1)[0] == "=" else 2))
        elif _BREAK.match(line):
            flush()
            blocks.append(Block("break", ""))
        elif _ATTRIBUTES.match(line) or _FENCED_DIV.match(line):
            pass  # markup for the site ("{: .note}", "::: {.callout-tip}"), not content
        elif heading:
            flush()
            text = _prose(_HEADING_ID.sub("", heading.group(2)))
            blocks.append(Block("heading", text, len(heading.group(1))))
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


def _quote_block(body: str) -> Block:
    """A blockquote, or a note when it is a GitHub alert ("[!NOTE] ...")."""
    alert = _CALLOUT.match(body)
    if not alert:
        return Block("quote", body)
    rest = body[alert.end():].strip()
    return Block("note", f"**{alert.group(1).capitalize()}**" + (f"\n\n{rest}" if rest else ""))


def _whole_block(lines: list[str], i: int, in_paragraph: bool,
                 in_list: bool) -> tuple[list[Block], int] | None:
    """A block that opens at line `i` and is read whole: fenced code, an admonition, and
    (not inside a paragraph) raw HTML, indented code (unless it continues a list item)
    or a FAQ table. Its blocks and the line after it."""
    line = lines[i]
    if directive := _DIRECTIVE.match(line):
        return _directive(lines, i, directive)
    if line.strip().startswith(("```", "~~~")):
        marker = line.strip()[:3]
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(marker)), len(lines) - 1)
        return [Block("code", "\n".join(lines[i:end + 1]))], end + 1
    if admonition := _ADMONITION.match(line):
        return _admonition(lines, i, admonition)
    if in_paragraph:
        return None
    if _HTML_OPEN.match(line):
        end = _html_block_end(lines, i)
        return html_blocks("\n".join(lines[i:end + 1])), end + 1
    if _INDENTED.match(line) and not in_list:
        return _indented_code(lines, i)
    return _faq_table(lines, i)


def _indented_code(lines: list[str], start: int) -> tuple[list[Block], int]:
    """An indented code block (four spaces or a tab) as fenced code, and the line after it."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _INDENTED.match(lines[end])):
        end += 1
    while not lines[end - 1].strip():
        end -= 1
    code = "\n".join(row[4:] if row.startswith("    ") else row[1:] for row in lines[start:end])
    return [Block("code", f"```\n{code}\n```")], end


def _admonition(lines: list[str], start: int,
                match: re.Match[str]) -> tuple[list[Block], int]:
    """An admonition and the line after it. A question one ("??? question "Why?"") is
    that question with its body as the answer, then a break; any other is a note."""
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(("    ", "\t"))):
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # the blank lines after the body are not in it
    body = "\n".join(row[4:] if row.startswith("    ") else row.lstrip("\t")
                     for row in lines[start + 1:end])
    kind = match.group(1).lower()
    title = None if match.group(2) is None else _prose(match.group(2))
    return _aside(kind in _QUESTION_ADMONITIONS, kind, title, body), end


def _aside(asks: bool, kind: str, title: str | None, body: str) -> list[Block]:
    """An admonition or directive's blocks. One that asks is its title as the question
    (else its body's first block) and the rest of its body as the answer, then a break;
    any other is a note headed by its title (else its kind)."""
    inner = markdown_blocks(body)
    if asks:
        if not title and inner:
            title = inner.pop(0).text
        return [Block("question", title or ""), *inner, Block("break", "")]
    name = kind.capitalize() if title is None else title
    parts = [f"**{name}**" if name else "", *(block.text for block in inner)]
    return [Block("note", "\n\n".join(part for part in parts if part))]


def _directive(lines: list[str], start: int,
               match: re.Match[str]) -> tuple[list[Block], int]:
    """A MyST directive (Jupyter Book) and the line after it: ```{code-cell} is code, a
    {dropdown} or {admonition} titled with a question is that question and its answer,
    any other ({note}, {tip}) is a note."""
    fence, name, args = match.group(1), match.group(2).lower(), match.group(3).strip()
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
    end = next((j for j in range(start + 1, len(lines)) if closing.match(lines[j])), len(lines))
    body = [row for row in lines[start + 1:end] if not _DIRECTIVE_OPTION.match(row)]
    if name in _CODE_DIRECTIVES:
        language = args.split()[0] if args else ""
        return [Block("code", "\n".join([f"```{language}", *body, "```"]))], end + 1
    title = _prose(args)
    asks = name in ("dropdown", "admonition") and title.endswith("?")
    return _aside(asks, name, title or None, "\n".join(body)), end + 1


def _cells(row: str) -> list[str]:
    """A table row's cells, an escaped pipe ("\\|") read as a pipe."""
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)]


def _faq_table(lines: list[str], start: int) -> tuple[list[Block], int] | None:
    """A table headed Question | Answer and the line after it: each row is a question
    and its answer, then a break. None for any other table (it stays a paragraph)."""
    if start + 1 >= len(lines) or "|" not in lines[start] or \
            not _TABLE_DELIMITER.match(lines[start + 1]):
        return None
    header = _cells(lines[start])
    if len(header) < 2 or not _QUESTION_HEADER.match(header[0]) or \
            not _ANSWER_HEADER.match(header[1]):
        return None
    blocks: list[Block] = []
    end = start + 2
    while end < len(lines) and "|" in lines[end] and lines[end].strip():
        question, answer = (_cells(lines[end]) + ["", ""])[:2]
        blocks += [Block("question", _prose(question)), Block("paragraph", _prose(answer)),
                   Block("break", "")]
        end += 1
    return [block for block in blocks if block.text or block.kind == "break"], end


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


def _class_styles(page: str) -> dict[str, str]:
    """What the page's <style> sheets declare for each class (".c3{font-weight:700}")."""
    styles: dict[str, str] = {}
    for sheet in re.findall(r"<style\b[^>]*>(.*?)</style>", page, re.S | re.I):
        for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", sheet):
            for name in re.findall(r"^\s*\.([\w-]+)\s*$", selectors.replace(",", "\n"), re.M):
                styles[name] = styles.get(name, "") + ";" + body
    return styles


class _HTMLBlocks(HTMLParser):
    """Headings, paragraphs, quotes, list items and <pre> of HTML, as Markdown blocks."""

    BLOCK = {"p", "li", "dt", "dd", "div", "td", "section", "article", "details", "summary",
             "figure", "figcaption"}
    SKIP = {"script", "style", "head", "nav", "footer", "template", "noscript", "object",
            "embed", "svg", "form", "button", "select", "textarea"}

    def __init__(self, collapse: bool = True, class_styles: dict[str, str] | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.buf: list[str] = []
        self.kind: str | None = None
        self.level = 0
        self.skip = 0
        self.quote: list[str] = []  # "quote" or "embed", one per open <blockquote>
        self.href: str | None = None
        self.collapse = collapse
        self.class_styles = class_styles or {}
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
                self.blocks.append(Block("code", "```\n" + text.strip("\n") + "\n```"))
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
        if not self.skip:
            self.buf.append(data)

    def close(self) -> None:
        super().close()
        self._flush()


def html_blocks(text: str, collapse: bool = True) -> list[Block]:
    """HTML: h1-h6 headings, p/li paragraphs, blockquotes, pre code; scripts dropped.

    `collapse=False` keeps line breaks inside a paragraph (for HTML inside Markdown).
    """
    parser = _HTMLBlocks(collapse, _class_styles(text))
    parser.feed(text)
    parser.close()
    return parser.blocks


def page_blocks(text: str, fmt: Format) -> list[Block]:
    """A page's body (front matter already removed) as blocks."""
    return {"text": text_blocks, "markdown": markdown_blocks, "html": html_blocks}[fmt](text)
