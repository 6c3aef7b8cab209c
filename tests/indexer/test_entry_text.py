"""The text of an entry survives YAML: what validates is what is written is what loads.

YAML counts a bare CR, NEL (U+0085), LS (U+2028) and PS (U+2029) as line breaks
(ruamel reads YAML 1.1 files), so any of them in an answer once ended the answer's
block early: the rest of the line became a key of its own (`demo:`, `status:`), and
the knowledge base no longer loaded. The schema now normalises line breaks and refuses
control characters in every field, naming the field, and every write reads its file
back before it replaces the old one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import indexer.kb
from indexer.kb import KnowledgeBase, KnowledgeBaseError, parse_entry
from indexer.schema import Entry, Status

INJECTED = "Hello.\rdemo: demos/does_not_exist.py"


@pytest.fixture
def kb(tmp_path: Path) -> KnowledgeBase:
    """An empty knowledge base in tmp_path/kb, with one demo in tmp_path/demos."""
    (tmp_path / "kb").mkdir()
    (tmp_path / "demos").mkdir()
    (tmp_path / "demos" / "ok.py").write_text("print('ok')\n")
    return KnowledgeBase.load(tmp_path / "kb")


def entry(**changes: Any) -> Entry:
    fields: dict[str, Any] = {"id": "relu", "question": "What is a ReLU?",
                              "alternate_questions": ["explain relu"],
                              "answer": "max(0, x).\n", "tags": ["chapter-4"],
                              "status": "draft"}
    fields.update(changes)
    return Entry.model_validate(fields)


def reloaded(kb: KnowledgeBase, entry_id: str = "relu") -> Entry:
    """The entry as a fresh start of the server would read it (strict, like askta check)."""
    return KnowledgeBase.load(kb.kb_dir).get(entry_id)


def field_errors(exc: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {str(err["loc"][0]): err["msg"] for err in exc.value.errors()}


# --- the attack: a bare CR in an answer -------------------------------------------------
def test_a_bare_cr_in_an_answer_cannot_inject_a_key(kb: KnowledgeBase) -> None:
    saved = kb.save_entry(entry(answer=INJECTED), create=True)
    assert saved.demo is None
    assert saved.answer == "Hello.\ndemo: demos/does_not_exist.py\n"
    again = reloaded(kb)  # before the fix: KnowledgeBaseError, 'demo' does not exist
    assert again == saved and again.demo is None


@pytest.mark.parametrize("status", ["published", "unanswered"])
def test_a_bare_cr_cannot_change_the_status(kb: KnowledgeBase, status: str) -> None:
    saved = kb.save_entry(entry(answer=f"Draft text.\rstatus: {status}"), create=True)
    assert saved.status is Status.draft
    assert reloaded(kb).status is Status.draft


@pytest.mark.parametrize(("raw", "normal"), [
    ("a\r\nb\r\n", "a\nb\n"),
    ("a\rb\r", "a\nb\n"),
    ("a\r\n\r\nb", "a\n\nb"),
    ("a\x85b", "a\nb"),
    ("a\u2028b", "a\nb"),
    ("a\u2029b", "a\nb"),
    ("- item\u2028- other", "- item\n- other"),
])
def test_line_breaks_in_an_answer_become_newlines(kb: KnowledgeBase, raw: str,
                                                  normal: str) -> None:
    assert entry(answer=raw).answer == normal
    saved = kb.save_entry(entry(answer=raw), create=True)
    assert saved.answer.rstrip("\n") == normal.rstrip("\n")
    assert reloaded(kb) == saved


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x0b", "\x0c", "\x1b", "\x7f", "\x9b",
                                  "\ud800", "\ufffe"])
def test_control_characters_in_an_answer_are_refused_by_name(char: str) -> None:
    with pytest.raises(ValidationError) as e:
        entry(answer=f"before{char}after")
    errors = field_errors(e)
    assert set(errors) == {"answer"}
    assert f"U+{ord(char):04X}" in errors["answer"]


def test_tabs_and_newlines_stay_in_an_answer(kb: KnowledgeBase) -> None:
    text = "```python\ndef f():\n\treturn 1\n```\n"
    saved = kb.save_entry(entry(answer=text), create=True)
    assert saved.answer == text and reloaded(kb).answer == text


@pytest.mark.parametrize("char", ["\r", "\n", "\t", "\x85", "\u2028", "\u2029"])
def test_line_breaks_in_a_question_become_spaces(kb: KnowledgeBase, char: str) -> None:
    e = entry(question=f"What is{char}a ReLU?", alternate_questions=[f"explain{char}relu"])
    assert e.question == "What is a ReLU?" and e.alternate_questions == ["explain relu"]
    saved = kb.save_entry(e, create=True)
    assert reloaded(kb) == saved == e


@pytest.mark.parametrize("field", ["question", "alternate_questions", "tags", "demo", "id"])
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\x9b", "\ud800"])
def test_control_characters_are_refused_in_every_field(field: str, char: str) -> None:
    value = {"question": f"What is{char} a ReLU?", "alternate_questions": [f"relu{char}"],
             "tags": [f"chapter{char}"], "demo": f"demos/ok{char}.py",
             "id": f"relu{char}"}[field]
    with pytest.raises(ValidationError) as e:
        entry(**{field: value})
    errors = field_errors(e)
    assert field in errors, errors
    assert f"U+{ord(char):04X}" in errors[field]


@pytest.mark.parametrize("field", ["tags", "demo", "id"])
@pytest.mark.parametrize("char", ["\r", "\n", "\x85", "\u2028", "\u2029"])
def test_line_breaks_are_refused_in_names(field: str, char: str) -> None:
    value = {"tags": [f"chapter-4{char}"], "demo": f"demos/ok.py{char}",
             "id": f"relu{char}"}[field]
    with pytest.raises(ValidationError) as e:
        entry(**{field: value})
    assert field in field_errors(e)


def test_the_file_problem_names_the_field() -> None:
    text = 'id: relu\nquestion: "What is\\x1b a ReLU?"\nanswer: x\nstatus: draft\n'
    with pytest.raises(KnowledgeBaseError) as e:
        parse_entry(text, "kb/relu.yaml", "relu")
    (problem,) = e.value.problems
    assert problem.field == "question" and "U+001B" in problem.message


@pytest.mark.parametrize("answer", [
    "plain", "  indented first line\nthen not", "trailing spaces   \nnext", "\n\nleading blank",
    "ends with blanks\n\n\n", "tab\tinside", "\tleading tab", "# not a comment", "key: value",
    "- a list\n- item", "---\n...\n", "| pipe > fold", "quotes ' \" `", "emoji 😀 and ünïcödé",
    "$$\\int_0^1 x\\,dx$$", "a\u00a0non-breaking space", "last line without newline",
])
def test_answers_round_trip_exactly(kb: KnowledgeBase, answer: str) -> None:
    saved = kb.save_entry(entry(answer=answer), create=True)
    assert saved.answer.rstrip("\n") == answer.rstrip("\n")
    assert reloaded(kb) == saved


# --- writes read their file back ----------------------------------------------------------
def test_a_write_that_does_not_read_back_equal_is_refused(kb: KnowledgeBase,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the serializer does, a file that would load differently is never written."""
    first = kb.save_entry(entry(answer="The original answer."), create=True)
    before = kb.path_of("relu").read_text()
    real_dump = indexer.kb._dump

    def sneaky(doc: Any) -> str:
        return real_dump(doc).replace("status: draft", "status: published")

    monkeypatch.setattr(indexer.kb, "_dump", sneaky)
    with pytest.raises(KnowledgeBaseError) as e:
        kb.save_entry(entry(answer="A new answer."))
    assert "status" in str(e.value)
    assert kb.path_of("relu").read_text() == before  # the old file is kept
    assert kb.get("relu") == first
    assert [p.name for p in kb.kb_dir.iterdir()] == ["relu.yaml"]  # no temporary file left
    with pytest.raises(KnowledgeBaseError):
        kb.add_alternate("relu", "another phrasing")
    assert kb.path_of("relu").read_text() == before


def test_add_alternate_normalises_and_round_trips(kb: KnowledgeBase) -> None:
    kb.save_entry(entry(), create=True)
    saved = kb.add_alternate("relu", "why\rdemo: demos/ok.py")
    assert saved.alternate_questions == ["explain relu", "why demo: demos/ok.py"]
    assert saved.demo is None and reloaded(kb) == saved
    with pytest.raises(KnowledgeBaseError) as e:
        kb.add_alternate("relu", "bell\x07 ringing")
    assert e.value.problems[0].field and e.value.problems[0].field.startswith(
        "alternate_questions")
    assert reloaded(kb) == saved


@pytest.mark.parametrize("content", ["id: relu\nquestion: [unclosed\n", "- a list\n",
                                     "just text\n", "id: relu\n\x00\n"])
def test_saving_over_a_broken_file_is_a_kb_error(kb: KnowledgeBase, content: str) -> None:
    kb.path_of("relu").write_text(content)
    with pytest.raises(KnowledgeBaseError):
        kb.save_entry(entry())
    with pytest.raises(KnowledgeBaseError):
        kb.add_alternate("relu", "another phrasing")
    assert kb.path_of("relu").read_text() == content


@pytest.mark.parametrize("text", [
    "id: relu\nquestion: &q [*q]\nanswer: x\nstatus: draft\n",
    "id: relu\n<<: {question: 1}\nanswer: x\nstatus: draft\n",
    "\ufeffid: relu\nquestion: What?\x00\n",
    "id: relu\nquestion: !!python/object:os.system x\n",
    "? [a, b]\n: c\n",
    "!!binary aGVsbG8=\n",
])
def test_parse_errors_are_always_kb_errors(text: str) -> None:
    with pytest.raises(KnowledgeBaseError):
        parse_entry(text, "kb/relu.yaml", "relu")
