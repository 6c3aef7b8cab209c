"""Reading a Markdown page into blocks: headings, quotes and callouts, code, breaks,
admonitions and MyST directives, FAQ tables; raw HTML converted, Liquid and Hugo
shortcodes dropped or turned into links.
"""

from __future__ import annotations

import re

from indexer.schema import LINK_SCHEMES
from server.review.pages.blocks import Block
from server.review.pages.html import html_blocks, inline_html_to_markdown
from server.review.pages.pairs import LIST_ITEM, split_pairs

# --- Markdown ----------------------------------------------------------------------------
# A line that opens a raw HTML block (CommonMark's kinds 1-7, roughly): it runs to the
# closing tag for script/style/pre/textarea and comments, else to the next blank line.
_HTML_OPEN = re.compile(r"^ {0,3}<(/?[a-zA-Z][a-zA-Z0-9-]*|!--)(?=[\s/>]|$)")
_HTML_RAW = re.compile(r"^ {0,3}<(script|style|pre|textarea)\b", re.I)
_SHORTCODE = re.compile(r"\{\{[<%]\s*(/?)([\w-]+)([^}]{0,500}?)[>%]\}\}")  # bounded: linear


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


# Jekyll's Liquid: a comment block, a highlight block's tags and any other tag (on one line).
_LIQUID_COMMENT = re.compile(r"\{%-?\s*comment\s*-?%\}")
_LIQUID_END_COMMENT = re.compile(r"\{%-?\s*endcomment\s*-?%\}")
_LIQUID_HIGHLIGHT = re.compile(r"\{%-?\s*(end)?highlight\b\s*(\w*)[^%\n]*%\}")
_LIQUID_TAG = re.compile(r"\{%[^\n]{0,300}?%\}")  # bounded: "{%{%{%..." stays linear
# Liquid output, what the site fills in and the page never says: "{{ site.baseurl }}",
# "{{page.url}}" (a space after the braces, or a dotted name; "{{x}}" may be LaTeX).
_LIQUID_OUTPUT = re.compile(r"\{\{-?(?:\s[^{}]{0,300}|[^{}\s]{0,100}\.[^{}]{0,300})\}\}")
# A link or autolink with a scheme ("https:", "javascript:"): one whose scheme an answer
# may not have (LINK_SCHEMES) keeps its text and loses its target.
_SCHEMED_LINK = re.compile(r"\[([^\]]{0,500})\]\(\s*<?\s*([a-zA-Z][\w+.-]{0,30}):"
                           r"(?:[^()]|\([^()]{0,200}\)){0,2000}\)")
_SCHEMED_AUTOLINK = re.compile(r"<\s*()([a-zA-Z][\w+.-]{0,30}):[^>\s]{0,2000}>")
# A link whose target was all Liquid output: "[the tips]()".
_EMPTY_LINK = re.compile(r"\[([^\]]{0,500})\]\(\s*\)")  # bounded, as _LIQUID_TAG
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


def _without_liquid_comments(text: str) -> str:
    """The text without its {% comment %} ... {% endcomment %} blocks, in one pass (an
    unclosed comment and what follows it are kept, as Jekyll would refuse the page)."""
    kept, pos = [], 0
    while (start := _LIQUID_COMMENT.search(text, pos)) is not None:
        end = _LIQUID_END_COMMENT.search(text, start.end())
        if end is None:
            break
        kept.append(text[pos:start.start()])
        pos = end.end()
    return "".join(kept) + text[pos:]


def _liquid(text: str) -> str:
    """Jekyll's Liquid tags as the site shows them: a highlight block becomes fenced code;
    comments and other tags ({% include %}, {% if %}) vanish, the text between kept."""
    text = _without_liquid_comments(text)
    text = _LIQUID_HIGHLIGHT.sub(lambda m: "```" + ("" if m.group(1) else m.group(2)), text)
    return _LIQUID_TAG.sub("", text)


def _without_liquid_output(text: str) -> str:
    """Prose without Liquid output ({{ site.baseurl }}); a link left without a target
    becomes its text."""
    return _EMPTY_LINK.sub(r"\1", _LIQUID_OUTPUT.sub("", text))


def _prose(text: str) -> str:
    """A paragraph or quote's Markdown source as an answer may show it."""
    text = inline_html_to_markdown(_without_liquid_output(text).strip()).strip()
    return _SCHEMED_AUTOLINK.sub(_allowed_link, _SCHEMED_LINK.sub(_allowed_link, text))


def _allowed_link(match: re.Match[str]) -> str:
    """The link as it is if its scheme is one an answer may have, else only its text."""
    return match.group(0) if match.group(2).lower() in LINK_SCHEMES else match.group(1)


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
