"""The entry schema: one YAML file in kb/ is one Entry."""

from __future__ import annotations

import json
import re
import unicodedata
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from indexer.demos import demo_path_problem

ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
# The schemes a link in an answer may have: what the page renders, what the importer keeps.
LINK_SCHEMES = frozenset({"http", "https", "mailto"})
MAX_ID_CHARS = 80
SLUG_WORDS = 8

# Line breaks besides "\n" that YAML (1.1, as ruamel reads it) also ends a line at: CRLF,
# a bare CR, NEL, LS and PS. Left in an answer, one ended the answer's block early and
# the rest of its line became a key of the file (`demo: ...`), so they are normalised.
_LINE_BREAK = re.compile("\r\n|[\r\x85\u2028\u2029]")
# Whitespace that has no place in a one-line field (a question): each run becomes a space.
_ONE_LINE_SPACE = re.compile("[\t\n\x0b\x0c\r\x1c-\x1f\x85\u2028\u2029]+")


def _refused_char(ch: str) -> bool:
    """Control characters (C0, DEL, C1), lone surrogates and U+FFFE/U+FFFF: invisible,
    or not text YAML can hold, in any field."""
    code = ord(ch)
    return (code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF
            or code in (0xFFFE, 0xFFFF))


def _char_name(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" ({name})" if name else "")


def check_text(value: str, *, allowed: str = "") -> str:
    """`value` unchanged, or ValueError naming the first character no field may hold
    (control characters, other than those in `allowed`)."""
    for i, ch in enumerate(value):
        if ch not in allowed and _refused_char(ch):
            line = value.count("\n", 0, i) + 1
            where = f" on line {line}" if "\n" in value else ""
            raise ValueError(f"contains the control character {_char_name(ch)}{where}: "
                             "remove it (paste the text as plain text)")
    return value


def normalize_answer(value: str) -> str:
    """CRLF, CR, NEL, LS and PS become "\n"; other control characters but tab: ValueError."""
    return check_text(_LINE_BREAK.sub("\n", value), allowed="\n\t")


def normalize_line(value: str) -> str:
    """Line breaks and tabs in a one-line field become one space; other control
    characters: ValueError."""
    return check_text(_ONE_LINE_SPACE.sub(" ", value))


def slugify(text: str, *, max_words: int = SLUG_WORDS, fallback: str = "new-entry") -> str:
    """An entry id proposed from a question, always one that ID_PATTERN accepts.

    Accents are folded to ASCII ("Qu'est-ce qu'un réseau" -> "quest-ce-quun-reseau"),
    apostrophes vanish inside words ("Isn't" -> "isnt"), anything else that is not a
    letter or digit separates words; at most `max_words` words and 80 characters,
    cut between words. `fallback` when nothing is left ("???", a question in Greek).
    """
    folded = unicodedata.normalize("NFKD", text.lower())
    folded = re.sub(r"['\u2019\u02bc`]", "", folded)
    words = re.findall(r"[a-z0-9]+", folded.encode("ascii", "ignore").decode())
    slug = ""
    for word in words[:max_words]:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > MAX_ID_CHARS:
            break
        slug = candidate
    if not slug and words:
        slug = words[0][:MAX_ID_CHARS]
    return slug or fallback


class Status(StrEnum):
    published = "published"
    draft = "draft"
    unanswered = "unanswered"


class Entry(BaseModel):
    """A curated question and its answer."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    id: str = Field(
        pattern=ID_PATTERN,
        max_length=MAX_ID_CHARS,
        description="Stable id, equal to the file name: lowercase words joined by hyphens.",
    )
    question: str = Field(
        min_length=3, max_length=300, description="The question as a student asks it."
    )
    alternate_questions: list[str] = Field(
        default_factory=list, description="Other phrasings; links from the review queue add here."
    )
    answer: str = Field("", description="Markdown; code blocks and $math$ allowed.")
    tags: list[str] = Field(default_factory=list)
    demo: str | None = Field(
        None, description="Path of a runnable demo under demos/, relative to the project."
    )
    status: Status = Status.published

    @field_validator("question", mode="before")
    @classmethod
    def _question_text(cls, v: Any) -> Any:
        return normalize_line(v) if isinstance(v, str) else v

    @field_validator("alternate_questions", mode="before")
    @classmethod
    def _alternates_text(cls, v: Any) -> Any:
        if not isinstance(v, list):
            return v
        out = []
        for i, q in enumerate(v):
            if isinstance(q, str):
                try:
                    q = normalize_line(q)
                except ValueError as e:
                    raise ValueError(f"item {i + 1} {e}") from None
            out.append(q)
        return out

    @field_validator("answer", mode="before")
    @classmethod
    def _answer_text(cls, v: Any) -> Any:
        return normalize_answer(v) if isinstance(v, str) else v

    @field_validator("id", "demo", mode="before")
    @classmethod
    def _name_text(cls, v: Any) -> Any:
        return check_text(v) if isinstance(v, str) else v

    @field_validator("tags", mode="before")
    @classmethod
    def _tags_text(cls, v: Any) -> Any:
        if isinstance(v, list):
            for t in v:
                if isinstance(t, str):
                    check_text(t)
        return v

    @field_validator("question")
    @classmethod
    def _question(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the question is empty")
        return v.strip()

    @field_validator("alternate_questions")
    @classmethod
    def _alternates(cls, v: list[str]) -> list[str]:
        out = []
        for i, q in enumerate(v):
            if not isinstance(q, str) or not q.strip():
                raise ValueError(f"item {i + 1} is empty: remove it or write a phrasing")
            out.append(q.strip())
        return out

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for t in v:
            if not re.fullmatch(ID_PATTERN, t):
                raise ValueError(
                    f"tag {t!r} should be lowercase words joined by hyphens, like 'chapter-4'"
                )
        return v

    @field_validator("demo")
    @classmethod
    def _demo(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        problem = demo_path_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _answer_needed(self) -> Entry:
        if self.status == Status.published and not self.answer.strip():
            raise ValueError(
                "a published entry needs an answer: write one, or set status to draft or unanswered"
            )
        return self

    @property
    def phrasings(self) -> list[str]:
        """The question followed by its alternates."""
        return [self.question, *self.alternate_questions]

    @property
    def answerable(self) -> bool:
        """Only published entries with an answer are ever served."""
        return self.status == Status.published and bool(self.answer.strip())

    def to_yaml_dict(self) -> dict[str, Any]:
        """Field order as instructors write it; empty optional fields left out."""
        d: dict[str, Any] = {"id": self.id, "question": self.question}
        d["alternate_questions"] = list(self.alternate_questions)
        d["answer"] = self.answer
        d["tags"] = list(self.tags)
        if self.demo:
            d["demo"] = self.demo
        d["status"] = self.status.value
        return d


def json_schema() -> str:
    """The JSON Schema of an entry file, for editors."""
    schema = Entry.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "askta knowledge-base entry"
    return json.dumps(schema, indent=2)
