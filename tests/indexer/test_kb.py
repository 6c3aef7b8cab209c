"""indexer/kb.py and indexer/schema.py: loading, every kind of error, atomic writes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from indexer.demos import DemoPathError, resolve_demo
from indexer.kb import EntryNotFound, KnowledgeBase, KnowledgeBaseError, parse_entry
from indexer.schema import Entry, Status, json_schema

GOOD = """\
id: {id}
question: {question}
alternate_questions:
  - {alt}
answer: |
  An answer with `code`.
tags: [chapter-4]
status: published
"""


def write(kb: Path, entry_id: str, text: str | None = None, **fmt: str) -> Path:
    kb.mkdir(exist_ok=True)
    path = kb / f"{entry_id}.yaml"
    values = {"id": entry_id, "question": f"What is {entry_id}?", "alt": f"explain {entry_id}"}
    values.update(fmt)
    path.write_text((text or GOOD).format(**values))
    return path


def problems(kb: Path) -> list[str]:
    with pytest.raises(KnowledgeBaseError) as e:
        KnowledgeBase.load(kb)
    return [str(p) for p in e.value.problems]


def test_loads_the_bundled_kb() -> None:
    kb = KnowledgeBase.load(Path(__file__).resolve().parents[2] / "kb")
    assert len(kb) == 19
    assert {e.id for e in kb.unanswered()} == {"sgd-limitations", "worry-about-ai"}
    assert len(kb.published()) == 17
    for entry in kb.published():
        assert 3 <= len(entry.alternate_questions) <= 8, entry.id


def test_valid_entry(tmp_path: Path) -> None:
    write(tmp_path / "kb", "relu")
    kb = KnowledgeBase.load(tmp_path / "kb")
    entry = kb.get("relu")
    assert entry.phrasings == ["What is relu?", "explain relu"]
    assert entry.status is Status.published
    with pytest.raises(EntryNotFound):
        kb.get("nope")


def test_bad_yaml_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path / "kb", "broken", "id: broken\nquestion: [unclosed\nanswer: x\n")
    (msg,) = problems(tmp_path / "kb")
    assert msg.startswith("kb/broken.yaml: line ")
    assert "is not valid YAML" in msg and "indentation" in msg


def test_unknown_field(tmp_path: Path) -> None:
    write(tmp_path / "kb", "relu", GOOD + "anwser: typo\n")
    (msg,) = problems(tmp_path / "kb")
    assert msg.startswith("kb/relu.yaml: line 9: 'anwser' is not a field of an entry")
    assert "check the spelling" in msg


def test_id_must_match_file_name(tmp_path: Path) -> None:
    write(tmp_path / "kb", "relu", GOOD.replace("id: {id}", "id: relus"))
    (msg,) = problems(tmp_path / "kb")
    assert msg.startswith("kb/relu.yaml: line 1: 'id' is 'relus' but the file is named relu.yaml")


def test_bad_id_and_missing_question(tmp_path: Path) -> None:
    write(tmp_path / "kb", "Bad_Id", "id: Bad_Id\nanswer: hi\n")
    msgs = problems(tmp_path / "kb")
    assert any("'id' must be lowercase words joined by hyphens" in m for m in msgs)
    assert any("line 1: 'question' is missing: add it" in m for m in msgs)


def test_duplicate_id(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    write(kb, "relu")
    write(kb, "relu2", GOOD.replace("id: {id}", "id: relu"), question="Other?", alt="other")
    msgs = problems(kb)
    assert any("'id'" in m and "relu2.yaml" in m for m in msgs)


def test_missing_demo(tmp_path: Path) -> None:
    write(tmp_path / "kb", "relu", GOOD + "demo: demos/missing.py\n")
    (msg,) = problems(tmp_path / "kb")
    assert msg == (
        "kb/relu.yaml: line 9: 'demo' points to demos/missing.py, which does not exist: "
        "create it or fix the path (relative to the project folder)"
    )


def test_same_question_in_two_entries(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    write(kb, "a-entry", question="Why ReLU?", alt="first")
    write(kb, "b-entry", question="Other question", alt="why relu")
    (msg,) = problems(kb)
    assert msg.startswith("kb/b-entry.yaml: line 4: 'alternate_questions[1]' 'why relu' is also")
    assert "a-entry" in msg


def test_published_needs_answer_and_bad_status(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    write(kb, "empty", GOOD.replace("answer: |\n  An answer with `code`.\n", 'answer: ""\n'))
    write(kb, "weird", GOOD.replace("published", "done"), question="Q2?", alt="q2")
    msgs = problems(kb)
    assert any("empty.yaml" in m and "a published entry needs an answer" in m for m in msgs)
    assert any(
        "weird.yaml: line 8: 'status' must be one of: published, draft, unanswered" in m
        for m in msgs
    )


def test_wrong_types(tmp_path: Path) -> None:
    write(tmp_path / "kb", "relu", GOOD.replace("tags: [chapter-4]", "tags: chapter-4"))
    (msg,) = problems(tmp_path / "kb")
    assert "line 7: 'tags' should be a list" in msg


def test_every_problem_reported_at_once(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    write(kb, "one", GOOD + "bogus: 1\n")
    write(kb, "two", "id: two\n")
    msgs = problems(kb)
    assert any(m.startswith("kb/one.yaml") for m in msgs)
    assert any(m.startswith("kb/two.yaml") for m in msgs)


def test_json_schema_lists_fields() -> None:
    schema = json.loads(json_schema())
    assert set(schema["properties"]) == set(Entry.model_fields)
    assert schema["additionalProperties"] is False


def test_add_alternate_keeps_comments(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    path = write(kb_dir, "relu", "# written by hand\n" + GOOD)
    kb = KnowledgeBase.load(kb_dir)
    entry = kb.add_alternate("relu", "why relu between layers")
    assert entry.alternate_questions[-1] == "why relu between layers"
    text = path.read_text()
    assert text.startswith("# written by hand\n")
    assert "- why relu between layers" in text
    # idempotent, and a phrasing owned by another entry is refused
    kb.add_alternate("relu", "Why ReLU between layers?")
    assert (
        KnowledgeBase.load(kb_dir).get("relu").alternate_questions.count("why relu between layers")
        == 1
    )
    write(kb_dir, "other", question="Other?", alt="something")
    kb = KnowledgeBase.load(kb_dir)
    with pytest.raises(KnowledgeBaseError, match="already a question of other"):
        kb.add_alternate("relu", "something")
    with pytest.raises(EntryNotFound):
        kb.add_alternate("nope", "x")


def test_save_entry_round_trip(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    write(kb_dir, "relu")
    kb = KnowledgeBase.load(kb_dir)
    new = Entry(
        id="new-entry",
        question="A new one?",
        answer="Line one.\n\nLine two.",
        tags=["x"],
        status=Status.draft,
    )
    kb.save_entry(new, create=True)
    again = KnowledgeBase.load(kb_dir).get("new-entry")
    assert again == new.model_copy(update={"answer": "Line one.\n\nLine two.\n"})
    assert "answer: |" in (kb_dir / "new-entry.yaml").read_text()
    with pytest.raises(KnowledgeBaseError, match="already exists"):
        kb.save_entry(new, create=True)


def _add_many(kb_dir: str, prefix: str, n: int) -> None:
    kb = KnowledgeBase.load(kb_dir)
    for i in range(n):
        kb.add_alternate("relu", f"{prefix} phrasing {i}")


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    write(kb_dir, "relu")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_many, args=(str(kb_dir), p, 10)) for p in ("ta1", "ta2")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    alts = KnowledgeBase.load(kb_dir).get("relu").alternate_questions
    assert len(alts) == 21
    assert {f"ta{t} phrasing {i}" for t in (1, 2) for i in range(10)} <= set(alts)


def _slow_write(path: str) -> None:
    # Write a big file slowly through the same atomic path and get killed midway.
    kb = KnowledgeBase.load(Path(path).parent)
    orig = os.fsync

    def slow(fd: int) -> None:
        time.sleep(30)
        orig(fd)

    os.fsync = slow  # type: ignore[assignment]
    kb.add_alternate("relu", "never lands")


def test_killed_mid_write_leaves_old_file(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    path = write(kb_dir, "relu")
    before = path.read_text()
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=_slow_write, args=(str(path),))
    proc.start()
    deadline = time.time() + 30
    while time.time() < deadline and not list(kb_dir.glob(".relu.*.tmp")):
        time.sleep(0.05)
    assert list(kb_dir.glob(".relu.*.tmp")), "the writer never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    assert path.read_text() == before
    assert KnowledgeBase.load(kb_dir).get("relu").alternate_questions == ["explain relu"]


def test_parse_entry_reports_nested_line() -> None:
    text = "id: x\nquestion: Why?\nalternate_questions:\n  - ok\n  - ''\nanswer: a\n"
    with pytest.raises(KnowledgeBaseError) as e:
        parse_entry(text, "kb/x.yaml", "x")
    (p,) = e.value.problems
    assert (p.line, p.field) == (3, "alternate_questions")
    assert "item 2 is empty" in p.message


# --- a broken file does not stop a server (skip_broken) ----------------------------------
def test_skip_broken_loads_the_rest_and_records_the_problems(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    write(kb_dir, "relu")
    write(kb_dir, "broken", "id: broken\nquestion: [unclosed\n")
    write(kb_dir, "typo", GOOD + "anwser: x\n", question="Typo?", alt="typo here")
    write(kb_dir, "zdup", question="What is relu?", alt="dup alt")
    write(kb_dir, "nodemo", GOOD + "demo: demos/missing.py\n", question="Demo?", alt="demo")
    with pytest.raises(KnowledgeBaseError):  # strict stays the default (askta check)
        KnowledgeBase.load(kb_dir)
    kb = KnowledgeBase.load(kb_dir, skip_broken=True)
    assert set(kb.entries) == {"relu"}
    assert sorted({p.path for p in kb.problems}) == [
        "kb/broken.yaml", "kb/nodemo.yaml", "kb/typo.yaml", "kb/zdup.yaml"]
    assert kb.skipped_files() == ["kb/broken.yaml", "kb/nodemo.yaml", "kb/typo.yaml",
                                  "kb/zdup.yaml"]


def test_a_clean_kb_has_no_problems(tmp_path: Path) -> None:
    write(tmp_path / "kb", "relu")
    assert KnowledgeBase.load(tmp_path / "kb", skip_broken=True).problems == ()
    assert KnowledgeBase.load(tmp_path / "kb").problems == ()


def test_skip_broken_still_needs_the_folder(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeBaseError, match="is not a folder"):
        KnowledgeBase.load(tmp_path / "nope", skip_broken=True)


def test_an_unreadable_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    write(tmp_path / "kb", "relu")
    (tmp_path / "kb" / "folder.yaml").mkdir()
    (tmp_path / "kb" / "latin1.yaml").write_bytes(b"id: latin1\nquestion: caf\xe9?\n")
    msgs = problems(tmp_path / "kb")
    assert any(m.startswith("kb/folder.yaml: cannot be read") for m in msgs)
    assert any(m.startswith("kb/latin1.yaml: is not UTF-8") for m in msgs)
    kb = KnowledgeBase.load(tmp_path / "kb", skip_broken=True)
    assert set(kb.entries) == {"relu"} and len(kb.problems) == 2


# --- demos: relative, under demos/, a .py regular file, never a way out -------------------
def _project_with_demo(tmp_path: Path, demo: str) -> Path:
    (tmp_path / "demos").mkdir(exist_ok=True)
    (tmp_path / "demos" / "ok.py").write_text("print('ok')\n")
    (tmp_path / "server").mkdir(exist_ok=True)
    (tmp_path / "server" / "app.py").write_text("SECRET = 'server code'\n")
    write(tmp_path / "kb", "relu", GOOD + f"demo: {demo}\n")
    return tmp_path / "kb"


def test_a_demo_under_demos_is_accepted(tmp_path: Path) -> None:
    kb = KnowledgeBase.load(_project_with_demo(tmp_path, "demos/ok.py"))
    assert kb.demo_path(kb.get("relu")) == (tmp_path / "demos" / "ok.py").resolve()


@pytest.mark.parametrize("demo", ["server/app.py", "./server/app.py", "demos/../server/app.py",
                                  "/etc/x.py", "demos/ok.txt", "demos\\ok.py", "demos/", ".py"])
def test_a_demo_outside_demos_is_refused(tmp_path: Path, demo: str) -> None:
    (msg,) = problems(_project_with_demo(tmp_path, demo))
    assert msg.startswith("kb/relu.yaml: line 9: 'demo' ")
    assert "demos/" in msg


def test_a_demo_symlink_out_of_demos_is_refused(tmp_path: Path) -> None:
    kb_dir = _project_with_demo(tmp_path, "demos/evil.py")
    (tmp_path / "demos" / "evil.py").symlink_to(tmp_path / "server" / "app.py")
    (msg,) = problems(kb_dir)
    assert msg.startswith("kb/relu.yaml: line 9: 'demo' ") and "outside demos/" in msg


def test_a_demo_symlink_inside_demos_is_accepted(tmp_path: Path) -> None:
    kb_dir = _project_with_demo(tmp_path, "demos/alias.py")
    (tmp_path / "demos" / "alias.py").symlink_to("ok.py")
    kb = KnowledgeBase.load(kb_dir)
    assert kb.demo_path(kb.get("relu")) == (tmp_path / "demos" / "ok.py").resolve()


def test_a_demo_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    kb_dir = _project_with_demo(tmp_path, "demos/dir.py")
    (tmp_path / "demos" / "dir.py").mkdir()
    (msg,) = problems(kb_dir)
    assert "'demo'" in msg


def test_demo_path_checks_again_at_use(tmp_path: Path) -> None:
    """A demo swapped for a symlink after loading is refused when it is read."""
    kb = KnowledgeBase.load(_project_with_demo(tmp_path, "demos/ok.py"))
    (tmp_path / "demos" / "ok.py").unlink()
    (tmp_path / "demos" / "ok.py").symlink_to(tmp_path / "server" / "app.py")
    with pytest.raises(DemoPathError, match="outside demos/"):
        kb.demo_path(kb.get("relu"))


def test_resolve_demo(tmp_path: Path) -> None:
    _project_with_demo(tmp_path, "demos/ok.py")
    assert resolve_demo(tmp_path, "demos/ok.py") == (tmp_path / "demos" / "ok.py").resolve()
    for bad in ("server/app.py", "../x.py", "demos/missing.py", "", "demos/ok.py\n"):
        with pytest.raises(DemoPathError):
            resolve_demo(tmp_path, bad)
