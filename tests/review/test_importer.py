"""`askta import`: a week's Q&A page becomes one draft entry per question."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.kb import KnowledgeBase
from server.cli.importer import import_command
from server.config import Settings
from server.review.importer import Importer, detect_format, parse_document

SEED = Path(__file__).resolve().parents[3] / "shared" / "seeds" / \
    "000_12107f6cd77e0e9f.txt"

MARKDOWN = """# Week 6 Q&A

Some intro that is not a question.

## Chapter 5

### Why does my loss go up after a few epochs?

Your learning rate is probably too high. Try the learning rate finder:

```python
learn.lr_find()
x = 1
```

### Is **softmax** the same as sigmoid?

Not quite: softmax normalizes over *all* classes.

- for two classes they agree
- otherwise they differ

What is cross-entropy?

It measures surprise.
"""

HTML = """<!doctype html><html><head><title>Week 7</title><style>p{}</style></head>
<body><nav>Home | About?</nav>
<h1>Week 7 Q&amp;A</h1>
<p>Intro text.</p>
<h2>Chapter 6</h2>
<h3>What is a <code>DataLoader</code> for?</h3>
<p>It batches your <strong>dataset</strong>;
see <a href="https://pytorch.org/docs">the docs</a>.</p>
<pre>dl = DataLoader(ds, batch_size=64)
for xb, yb in dl:
    pass</pre>
<p><b>Why shuffle the training set?</b></p>
<ul><li>It decorrelates batches.</li><li>It helps SGD.</li></ul>
<script>alert("not content?")</script>
</body></html>
"""


@pytest.fixture
def empty_kb(tmp_path: Path) -> KnowledgeBase:
    (tmp_path / "kb").mkdir()
    return KnowledgeBase.load(tmp_path / "kb")


def test_seed_page_yields_its_19_questions() -> None:
    text = SEED.read_text(encoding="utf-8")
    assert detect_format(SEED, text) == "text"
    questions = parse_document(text, "text")
    assert len(questions) == 19
    assert questions[0].question == "How do I see when everything is due?"
    assert questions[0].answer.startswith("Click Calendar in the left sidebar in Moodle.")
    assert questions[-1].question == "Discussion 3: Should I be worried about AI?"
    sgd = next(q for q in questions if q.question == "What are limitations of SGD?")
    assert sgd.answer == ""  # asked but never answered on the page
    mse = next(q for q in questions if q.question.startswith("Why use MSE"))
    assert "why ever use the mean instead of the median?" in mse.answer  # not a new question
    gradient = next(q for q in questions if "gradient” in several" in q.question)
    assert "```python\ndef f(param, x): return x * param" in gradient.answer
    assert gradient.tags == ["week-5", "chapter-4"]
    assert questions[0].tags == ["week-5", "reflections"]


def test_seed_page_writes_19_draft_entries(empty_kb: KnowledgeBase) -> None:
    questions = parse_document(SEED.read_text(encoding="utf-8"), "text")
    result = Importer(empty_kb).run(questions)
    assert len(result.created) == 19 and result.skipped == []
    kb = KnowledgeBase.load(empty_kb.kb_dir)  # what was written passes `askta check`
    assert len(kb) == 19
    assert all(e.status.value == "draft" for e in kb.entries.values())
    assert kb.get("how-do-i-see-when-everything-is-due").question == \
        "How do I see when everything is due?"
    again = Importer(kb).run(questions)  # importing twice duplicates nothing
    assert again.created == [] and len(again.skipped) == 19


def test_questions_already_in_the_kb_are_skipped(kb_dir: Path) -> None:
    kb = KnowledgeBase.load(kb_dir)
    known = kb.get("why-nonlinearities").question
    text = f"{known}\n\nBecause.\n\nA brand new question about tensors?\n\nYes.\n"
    result = Importer(kb).run(parse_document(text, "text"))
    assert [c["question"] for c in result.created] == ["A brand new question about tensors?"]
    assert result.skipped[0]["reason"] == "already in the knowledge base as why-nonlinearities"
    KnowledgeBase.load(kb_dir)  # still valid


def test_markdown_page() -> None:
    assert detect_format(Path("w6.md"), MARKDOWN) == "markdown"
    questions = parse_document(MARKDOWN, "markdown")
    assert [q.question for q in questions] == ["Why does my loss go up after a few epochs?",
                                               "Is softmax the same as sigmoid?",
                                               "What is cross-entropy?"]
    assert "```python\nlearn.lr_find()\nx = 1\n```" in questions[0].answer
    assert "- for two classes they agree" in questions[1].answer
    assert questions[0].tags == ["week-6", "chapter-5"]
    assert questions[2].answer == "It measures surprise."


def test_html_page() -> None:
    assert detect_format(Path("page.txt"), HTML) == "html"
    questions = parse_document(HTML, "html")
    assert [q.question for q in questions] == ["What is a `DataLoader` for?",
                                               "Why shuffle the training set?"]
    first = questions[0]
    assert "[the docs](https://pytorch.org/docs)" in first.answer
    assert "```\ndl = DataLoader(ds, batch_size=64)\nfor xb, yb in dl:\n    pass\n```" in \
        first.answer
    assert questions[1].answer == "- It decorrelates batches.\n\n- It helps SGD."
    assert first.tags == ["week-7", "chapter-6"]


def test_ids_are_unique(empty_kb: KnowledgeBase) -> None:
    text = "Why is it slow?\n\nA.\n\nWhy is it slow on GPU too?\n\nB.\n"
    (empty_kb.kb_dir / "why-is-it-slow.yaml").write_text(
        "id: why-is-it-slow\nquestion: Something else entirely?\nstatus: draft\n")
    kb = KnowledgeBase.load(empty_kb.kb_dir)
    result = Importer(kb).run(parse_document(text, "text"))
    assert [c["id"] for c in result.created] == ["why-is-it-slow-2", "why-is-it-slow-on-gpu-too"]


def test_cli(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    page = tmp_path / "week5.txt"
    shutil.copy(SEED, page)
    settings = Settings(kb_dir=kb, data_dir=tmp_path / "data")
    runner = CliRunner()
    dry = runner.invoke(import_command, [str(page), "--dry-run"], obj={"settings": settings})
    assert dry.exit_code == 0, dry.output
    assert "found 19 questions" in dry.output and "19 draft entries would write" in dry.output
    assert list(kb.iterdir()) == []
    out = runner.invoke(import_command, [str(page), "--json"], obj={"settings": settings})
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert len(data["questions"]) == 19 and len(data["created"]) == 19
    assert len(list(kb.glob("*.yaml"))) == 19


def test_cli_refuses_an_invalid_kb(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "bad.yaml").write_text("id: [unclosed\n")
    page = tmp_path / "p.txt"
    page.write_text("Why?\n\nBecause.\n")
    result = CliRunner().invoke(import_command, [str(page)],
                                obj={"settings": Settings(kb_dir=kb, data_dir=tmp_path)})
    assert result.exit_code == 3 and "fix the knowledge base first" in result.output
