"""The entry schema: one YAML file in kb/ is one Entry."""

from __future__ import annotations

import json
import re
import unicodedata
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"
MAX_ID_CHARS = 80
SLUG_WORDS = 8


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
    demo: str | None = Field(None, description="Path of a runnable demo, relative to the project.")
    status: Status = Status.published

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
            if not re.match(ID_PATTERN, t):
                raise ValueError(
                    f"tag {t!r} should be lowercase words joined by hyphens, like 'chapter-4'"
                )
        return v

    @field_validator("demo")
    @classmethod
    def _demo(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        if v.startswith("/") or ".." in v.split("/") or not v.endswith(".py"):
            raise ValueError(
                f"{v!r} should be a relative path to a .py file inside the project, like demos/x.py"
            )
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
