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
    settings = Settings(kb_dir=kb, data_dir=tmp_path / "data", model="hashing")
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


# --- real pages: front matter, statement and topic headings, quotes, raw HTML -----------
DATA = Path(__file__).resolve().parents[1] / "data" / "import"


def test_yaml_front_matter_statement_topic_and_quoted_questions() -> None:
    page = DATA / "week6-qa.md"
    questions = parse_document(page.read_text(encoding="utf-8"), "markdown")
    assert [q.question for q in questions] == [
        "How do I know when the training loop is done?",
        "I'm still fuzzy about how the gradient gets through a ReLU.",  # a statement
        "PyTorch vs NumPy",  # topics
        "Relationship to linear regression",
        "Can I see what people said about double descent?",
        "Why does the loss sometimes go up for one batch and then down again?",  # quoted
        "I tried a learning rate of 10 and everything became NaN. Is that expected? "
        "I was following the notebook exactly.",  # one question quoted over two paragraphs
    ]
    by_question = {q.question: q for q in questions}
    # the title and date are tags, never content; the warning before any question is dropped
    assert questions[0].tags == ["week-6", "2024-02-16", "reflections"]
    assert questions[-1].tags == ["week-6", "2024-02-16", "chapter-5"]
    assert not any("title:" in q.answer or "Warning" in q.answer for q in questions)
    assert "```python\nx = torch.tensor" in by_question[
        "I'm still fuzzy about how the gradient gets through a ReLU."].answer
    assert by_question["PyTorch vs NumPy"].answer.startswith("They are very similar")
    # "Some stragglers:" between the section heading and its first question is no answer
    assert not any("stragglers" in q.answer for q in questions)
    assert by_question["Why does the loss sometimes go up for one batch and then down again?"] \
        .answer.startswith("Each minibatch is a noisy sample")


def test_raw_html_embedded_posts_and_scripts_become_safe_markdown() -> None:
    from server.web.markdown import render_markdown

    questions = parse_document((DATA / "week6-qa.md").read_text(encoding="utf-8"), "markdown")
    post = next(q for q in questions if "double descent" in q.question).answer
    # the embedded post is kept as a quoted paragraph with its links, the script dropped
    assert "> Bigger models can generalize *better* after the interpolation point." in post
    assert "[March 1, 2024](https://twitter.com/researcher/status/1234567890)" in post
    assert post.endswith("See also the lecture notes.")
    nan = questions[-1].answer
    assert "Try the learning rate finder instead." in nan
    assert "<https://www.youtube.com/watch?v=dQw4w9WgXcQ>" in nan  # a shortcode: its link
    for q in questions:
        for bad in ("<script", "onclick", "evil.example", "document.cookie", "<span", "{{<"):
            assert bad not in q.answer, (q.question, bad)
        html = render_markdown(q.answer)
        assert "<script" not in html and "onclick" not in html


def test_toml_front_matter_and_ordinary_sections_stay_sections() -> None:
    page = DATA / "week7-notes.md"
    questions = parse_document(page.read_text(encoding="utf-8"), "markdown")
    # "Logistics", "Gradient descent recap" and "Looking ahead" are outside the Q&A section
    assert [q.question for q in questions] == ["Dropout vs weight decay",
                                               "I don't get why we shuffle the training set.",
                                               "What does `model.eval()` change?"]
    assert questions[0].tags == ["week-7", "2024-02-23"]
    assert "Next week" not in questions[-1].answer and "quiz" not in questions[0].answer


def test_without_a_qa_section_only_questions_are_questions() -> None:
    page = ("---\ntitle: Lab 3\n---\n## Setup\n\nInstall the packages.\n\n"
            "## PyTorch vs NumPy\n\nA table of differences.\n\n> A quote from the docs.\n\n"
            "## Why is my kernel dead?\n\nRestart it.\n")
    questions = parse_document(page, "markdown")
    assert [(q.question, q.answer) for q in questions] == [("Why is my kernel dead?",
                                                            "Restart it.")]
    assert questions[0].tags == ["lab-3", "pytorch-vs-numpy"]  # the section it is under


def test_a_heading_with_questions_below_is_a_section_not_a_question() -> None:
    page = ("# Q&A\n\n## Backprop\n\n> How does backward know the graph?\n\nIt records it.\n\n"
            "## Tensors\n\n### Views and copies\n\nA view shares memory.\n\n"
            "### I'm confused by broadcasting.\n\nSizes of 1 stretch.\n\n> Quoted docs.\n")
    questions = parse_document(page, "markdown")
    assert [q.question for q in questions] == ["How does backward know the graph?",
                                               "Views and copies",
                                               "I'm confused by broadcasting."]
    assert questions[0].tags == ["backprop"] and questions[1].tags == ["tensors"]
    # a quote inside a heading question's answer is part of the answer
    assert questions[2].answer == "Sizes of 1 stretch.\n\n> Quoted docs."


def test_html_page_with_a_qa_section() -> None:
    page = """<html><body><h1>Week 8</h1><h2>Announcements</h2><p>No class Monday.</p>
    <h2>Q&amp;A</h2><p>Some stragglers:</p>
    <blockquote><p>Why is attention quadratic?</p></blockquote>
    <p>Every token looks at every other token.</p>
    <blockquote class="twitter-tweet"><p>Linear attention exists too</p></blockquote>
    <script>alert(1)</script>
    <h3>Encoder vs decoder</h3><p>An encoder sees the whole input; a decoder only the past.</p>
    <h3>I still don't get positional encodings.</h3>
    <p>They tell the model where each token is.<iframe src="https://www.youtube.com/embed/x1"></iframe></p>
    </body></html>"""
    questions = parse_document(page, "html")
    assert [q.question for q in questions] == ["Why is attention quadratic?",
                                               "Encoder vs decoder",
                                               "I still don't get positional encodings."]
    assert questions[0].answer == ("Every token looks at every other token.\n\n"
                                   "> Linear attention exists too")
    assert questions[0].tags == ["week-8", "q-a"]
    assert "<https://www.youtube.com/embed/x1>" in questions[2].answer
    assert all("alert" not in q.answer for q in questions)


def test_dry_run_shows_each_question_with_the_first_line_of_its_answer(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    settings = Settings(kb_dir=kb, data_dir=tmp_path / "data", model="hashing")
    result = CliRunner().invoke(import_command, [str(DATA / "week7-notes.md"), "--dry-run"],
                                obj={"settings": settings})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    at = lines.index("  would write kb/dropout-vs-weight-decay.yaml: Dropout vs weight decay")
    assert lines[at + 1] == "      Both fight overfitting. Dropout zeroes random activations " \
        "while training; weight"
    assert "found 3 questions" in lines[0] and list(kb.iterdir()) == []


def test_import_lists_drafts_that_could_be_confused(kb_dir: Path, tmp_path: Path) -> None:
    page = tmp_path / "week9.md"
    known = KnowledgeBase.load(kb_dir).get("why-nonlinearities")
    page.write_text(f"# Q&A\n\n## {known.question.rstrip('?')}, again?\n\n{known.answer}\n\n"
                    "## Where is the exam room?\n\nRoom 101.\n")
    settings = Settings(kb_dir=kb_dir, data_dir=tmp_path / "data", model="hashing")
    out = CliRunner().invoke(import_command, [str(page), "--dry-run"], obj={"settings": settings})
    assert out.exit_code == 0, out.output
    assert "pairs of a new draft and another entry could be confused:" in out.output
    assert "why-nonlinearities" in out.output.split("could be confused:")[1]
    data = json.loads(CliRunner().invoke(import_command, [str(page), "--dry-run", "--json"],
                                         obj={"settings": settings}).output)
    pair = next(o for o in data["overlaps"] if "why-nonlinearities" in (o["a"]["id"],
                                                                        o["b"]["id"]))
    assert pair["flips"] and {pair["a"]["id"], pair["b"]["id"]} == {
        "why-nonlinearities", data["created"][0]["id"]}
    quiet = CliRunner().invoke(import_command, [str(page), "--dry-run", "--no-overlaps"],
                               obj={"settings": settings})
    assert "could be confused" not in quiet.output


def test_section_names_on_a_qa_page_are_not_questions() -> None:
    page = ("---\ntitle: Week 9 Q&A\n---\n## Homework\n\nDue Friday.\n\n## Looking ahead\n\n"
            "Convolutions next.\n\n## Announcements\n\nNo class Monday.\n\n"
            "## Updates to the weights confuse me.\n\nEach step moves them a little.\n")
    questions = parse_document(page, "markdown")
    assert [q.question for q in questions] == ["Updates to the weights confuse me."]
    assert questions[0].answer == "Each step moves them a little."


def test_a_model_that_cannot_load_stops_the_import_before_it_writes(tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    settings = Settings(kb_dir=kb, data_dir=tmp_path / "data", model=str(tmp_path / "no-model"))
    result = CliRunner().invoke(import_command, [str(DATA / "week7-notes.md")],
                                obj={"settings": settings})
    assert result.exit_code == 4 and result.output.startswith("error: ")
    assert list(kb.iterdir()) == []
    skipped = CliRunner().invoke(import_command, [str(DATA / "week7-notes.md"), "--no-overlaps"],
                                 obj={"settings": settings})
    assert skipped.exit_code == 0 and len(list(kb.glob("*.yaml"))) == 3


def test_rules_around_prose_are_not_front_matter() -> None:
    from server.review.pages import split_front_matter

    page = "---\nJust a note before the questions.\n---\n\nWhy is it slow?\n\nIdle GPU.\n"
    front, body = split_front_matter(page)
    assert front.tags == [] and body == page  # kept as written: it is not YAML front matter
    front, body = split_front_matter("+++\ntitle = 'Week 3 Q&A'\n+++\nBody.\n")
    assert (front.title, front.tags, body) == ("Week 3 Q&A", ["week-3"], "Body.\n")


# --- FAQ shapes: Q:/A: marks, a question and its answer in one paragraph, bold lines ------
def _pairs(name: str) -> list[tuple[str, str]]:
    page = DATA / name
    text = page.read_text(encoding="utf-8")
    return [(q.question, q.answer) for q in parse_document(text, detect_format(page, text))]


def test_markdown_faq_with_marks_bold_questions_and_numbered_ones() -> None:
    pairs = _pairs("week9-faq.md")
    assert [q for q, _ in pairs] == [
        "Why does my loss go up after I resume from a checkpoint?",  # "Q:" mark dropped
        "What's the difference between `model.eval()` and `torch.no_grad()`?",
        "How many epochs should I train for?",  # numbered and bold, answer on the next line
        "Can I use a GPU in Colab for the homework?",
        # a marked question may be longer than an unmarked one, and end without "?"
        "I noticed that my accuracy gets worse when I train with a larger batch size even "
        "though I scaled the learning rate by the same factor, so what is going on there?",
        "I'm still confused about the receptive field.",  # a bold statement on a Q&A page
    ]
    answers = dict(pairs)
    # the "A:" mark goes, the answer is the lines after the question, and no more
    assert answers["Why does my loss go up after I resume from a checkpoint?"] == \
        "You probably did not save the optimizer state. Save `optimizer.state_dict()` too."
    assert answers["What's the difference between `model.eval()` and `torch.no_grad()`?"] \
        .startswith("`eval()` changes how layers behave")
    assert answers["How many epochs should I train for?"] == \
        "Until the validation loss stops improving: stop early and keep the best checkpoint."
    # a question asked inside an answer's prose is part of the answer
    receptive = answers["I'm still confused about the receptive field."]
    assert receptive.endswith("Why does this matter? Because a network can only use what "
                              "its output sees.")
    # "Announcements" holds news even on a Q&A page: its bold line is no question
    assert not any("deadline" in q.lower() or "14th" in a for q, a in pairs)


def test_plain_text_faq_with_q_and_a_lines() -> None:
    assert _pairs("week10-faq.txt") == [
        ("Do I need to normalize my inputs?", "Usually yes: standardize each feature with "
         "the training set's mean and standard deviation."),
        ("Why is my GPU memory full after one epoch?",
         "You keep each loss tensor together with its graph. Append loss.item() instead."),
        ("I'm getting \"Expected all tensors to be on the same device\".",
         "Move the model and every batch to the same device with .to(device)."),
    ]


def test_html_faq_with_br_split_pairs_definition_lists_and_details() -> None:
    pairs = _pairs("week11-faq.html")
    assert [q for q, _ in pairs] == [
        "Why does my validation accuracy jump around so much?",
        "Can I reuse one optimizer across folds?",
        "What is a logit?",
        "Why is the softmax followed by a log?",
        "Why is my accuracy stuck at 10% on CIFAR-10?",
        "How do I set a random seed everywhere?",
    ]
    answers = dict(pairs)
    assert answers["Why does my validation accuracy jump around so much?"] == \
        "Your validation set is small: every example is worth a whole percent."
    assert answers["Can I reuse one optimizer across folds?"].startswith("No, make a fresh one")
    assert answers["Why is the softmax followed by a log?"] == \
        "For numerical stability use `log_softmax`, which never takes the log of 0."
    assert "stragglers" not in " ".join(answers.values())
    for _, answer in pairs:
        assert "owned" not in answer and "onerror" not in answer and "<img" not in answer


# --- more page shapes: setext headings and rules, admonitions and callouts, exported docs,
# Canvas classes, Liquid, office hours digests, emails, FAQ tables, lecture notes --------
def test_setext_headings_and_thematic_breaks_read_as_commonmark_does() -> None:
    pairs = _pairs("week12-setext.md")
    assert [q for q, _ in pairs] == [
        "Why does my validation loss go up while the training loss keeps going down?",
        "Is dropout used at test time?",
        "How much weight decay should I use?",
        "Why is my model worse with batch norm and a batch size of 2?",  # <details> in Markdown
        "Label smoothing",  # a setext topic heading on a Q&A page
    ]
    answers = dict(pairs)
    # the rules between pairs are no part of any answer
    assert answers["Why does my validation loss go up while the training loss keeps going "
                   "down?"] == ("That is overfitting: the model memorises the training set. "
                              "Add data\naugmentation or weight decay, or stop earlier.")
    assert answers["Is dropout used at test time?"].endswith("nothing changes in expectation.")
    # "---" right under a paragraph makes it a heading (CommonMark), not a rule; a heading
    # that long is prose, so it stays the answer
    assert answers["How much weight decay should I use?"] == (
        "Start with 1e-4 for SGD or 0.01 for AdamW, then tune on the validation set. "
        "A smaller value is safer than a larger one.")
    assert answers["Label smoothing"].endswith("never pushed to infinite logits.")
    assert all("---" not in a and "* * *" not in a and "Homework 5" not in a for _, a in pairs)


def test_admonitions_and_callouts() -> None:
    pairs = _pairs("week13-admonitions.md")
    assert [q for q, _ in pairs] == [
        "Why do we use 3x3 kernels instead of bigger ones?",  # ??? question "..."
        "What does padding=1 do?",  # ???+ question
        "Max pooling vs strided convolution",  # !!! faq: the title asks, even as a topic
        "Do I need to normalize images to [0, 1]?",
    ]
    answers = dict(pairs)
    # the indented body is the answer, dedented; a note inside it is quoted
    assert answers["Why do we use 3x3 kernels instead of bigger ones?"] == (
        "Two stacked 3x3 convolutions see a 5x5 window with fewer parameters and an\n"
        "extra nonlinearity.\n\n```python\nconv = nn.Conv2d(64, 64, kernel_size=3, padding=1)"
        "\n```\n\n> **Rule of thumb**\n>\n> Prefer depth over kernel size.")
    assert answers["What does padding=1 do?"].endswith(
        "> **Warning**\n>\n> With `padding=\"same\"` and a stride above 1, PyTorch raises "
        "an error.")
    assert answers["Max pooling vs strided convolution"] == \
        "Both downsample. A strided convolution learns how; pooling is fixed."
    # the answer ends with the admonition: the warning and the closing line are not in it
    assert answers["Do I need to normalize images to [0, 1]?"] == (
        "Yes, and then standardize with the dataset mean and standard deviation:\n"
        "`transforms.Normalize(mean, std)`.")
    # notes and GitHub callouts ("> [!TIP] Why not start early?") are never questions
    text = " ".join(q + a for q, a in pairs)
    for aside in ("lecture 12", "Sunday", "start early", "Out of memory", "forum", "[!"):
        assert aside not in text


def test_google_docs_export_with_styled_spans() -> None:
    pairs = _pairs("week14-gdocs.html")
    assert [q for q, _ in pairs] == [
        "Why do RNN gradients vanish over long sequences?",  # bold by font-weight: 700
        "How does an LSTM fix that?",  # one bold question split over two spans
        "Should I clip gradients?",  # two <strong>s and a &nbsp;
        "GRU vs LSTM",  # bold by a class of the style sheet, a topic on a Q&A page
    ]
    answers = dict(pairs)
    assert answers["Why do RNN gradients vanish over long sequences?"].endswith(
        "gradients shrink (or blow up) *exponentially* with the sequence length.")
    assert answers["Should I clip gradients?"] == (
        "Yes for RNNs: `clip_grad_norm_(model.parameters(), 1.0)` before "
        "`optimizer.step()`.")  # a monospace font is code
    assert answers["GRU vs LSTM"].startswith("A GRU has two gates")
    # the page-wide <b style="font-weight:normal"> wrapper makes nothing bold
    assert all("**" not in q + a for q, a in pairs)


def test_canvas_page_with_question_classes_nested_divs_and_bad_links() -> None:
    pairs = _pairs("week15-canvas.html")
    assert [q for q, _ in pairs] == [
        "Why do we divide by the square root of d_k?",
        "I don't understand what the attention mask does.",  # <p class="question">
        "What is multi-head attention?",
        "Positional encodings",
        "Can we use the attention code from the lab in the project?",  # Q?<br>A<br><br>Q?...
        "Will the slides be posted?",
    ]
    answers = dict(pairs)
    assert answers["I don't understand what the attention mask does."].startswith(
        "It sets the scores of positions")
    assert answers["What is multi-head attention?"].endswith(
        "See the demo or [the paper](https://arxiv.org/abs/1706.03762).")
    assert answers["Can we use the attention code from the lab in the project?"] == \
        "Yes, if you cite it in your report."
    assert answers["Positional encodings"].endswith("added to its embedding.")
    assert "Piazza" not in answers["Will the slides be posted?"]  # Announcements: no answer
    page = (DATA / "week15-canvas.html").read_text(encoding="utf-8")
    tags = {q.question: q.tags for q in parse_document(page, "html")}
    assert tags["Will the slides be posted?"] == ["week-15", "course-logistics"]
    for _, answer in pairs:
        for bad in ("javascript", "onclick", "onmouseover", "track()", "<"):
            assert bad not in answer


def test_jekyll_page_with_liquid_tags() -> None:
    pairs = _pairs("week16-jekyll.md")
    assert [q for q, _ in pairs] == ["What is the reparameterization trick?",
                                     "Why are GAN losses so unstable?",  # its {#id} dropped
                                     "Do diffusion models need a discriminator?"]
    answers = dict(pairs)
    # {% highlight %} is fenced code; {{ site.baseurl }} vanishes from the link
    assert answers["What is the reparameterization trick?"].endswith(
        "See the [VAE notebook](/notebooks/vae.ipynb).\n\n```python\n"
        "eps = torch.randn_like(sigma)\nz = mu + sigma * eps  # Why? The randomness no longer "
        "depends on the parameters.\n```")
    assert answers["Why are GAN losses so unstable?"] == (
        "The generator and the discriminator chase each other; neither loss has to go down."
        "\nRead the GAN tips.")  # a link whose target was all Liquid: its text
    assert answers["Do diffusion models need a discriminator?"].startswith("No. They are")
    for question, answer in pairs:
        assert "{%" not in answer and "{{" not in answer and "{:" not in question + answer
    assert not any("notebooks move" in a for _, a in pairs)  # {% comment %} dropped


def test_office_hours_digest_with_student_and_ta_lines() -> None:
    assert _pairs("week17-office-hours.txt") == [
        ("Is fine-tuning the whole network better than only training the head?",
         "With a small dataset, train the head first and then unfreeze the rest with a lower "
         "learning rate. With lots of data full fine-tuning usually wins."),
        ("My loss is NaN after the first batch when I use mixed precision.",  # a student's
         "Use torch.cuda.amp.GradScaler; without it small gradients underflow in float16."),
        ("How do I choose the learning rate for the unfrozen layers?",
         "Discriminative learning rates: about ten times smaller for early layers than for "
         "the head."),  # the rule and "Other questions from the queue:" are not in it
        ("What is the difference between freezing and setting requires_grad to False?",
         "They are the same thing: a frozen parameter has requires_grad=False, so the "
         "optimizer never changes it."),
        ("Can I use a pretrained ImageNet model on grayscale X-rays?",
         "Yes. Repeat the single channel three times, or average the weights of the first "
         "convolution over its input channels."),  # "See you next week!" is not in it
    ]
    page = DATA / "week17-office-hours.txt"
    assert parse_document(page.read_text(encoding="utf-8"), "text")[0].tags == ["week-17"]


def test_email_with_a_numbered_list_of_questions() -> None:
    assert _pairs("week18-email.txt") == [
        ("Will the midterm cover batch normalization?",
         "Yes, everything up to and including lecture 9, so batch norm and dropout are in."),
        ("Can we bring a cheat sheet?", "One double-sided letter page, handwritten or typed."),
        ("Do we need to memorize the backprop equations for an LSTM?",
         "No. You should be able to derive the gradient of a small computational graph, but "
         "you will not be asked to reproduce the LSTM equations."),
        ("Is there a practice exam?",  # the sign-off and signature are not in the answer
         "Yes, it is on the course website under Exams, with solutions."),
    ]


def test_lecture_notes_with_rhetorical_questions_have_none() -> None:
    # questions inside prose, "# Why?" in fenced and indented code, a long paragraph that
    # ends with "?": none of them is a question
    assert _pairs("week19-lecture-notes.md") == []


def test_markdown_table_faq() -> None:
    assert _pairs("week20-table.md") == [
        ("Can we work in groups of four?", "No, groups of at most three."),
        ("Which datasets are allowed?", "Any public dataset; tell us in your proposal."),
        ("How long should the report be?",
         "Six pages, not counting references. Use the `NeurIPS` template."),
        ("Do we need to use PyTorch?", "JAX or TensorFlow are fine too | ask if unsure."),
    ]  # the Milestone | Date table is no FAQ and in no answer


def test_new_shapes_carry_nothing_executable() -> None:
    from server.web.markdown import render_markdown

    page = ('# Q&A\n\n??? question "<img src=x onerror=alert(1)>Why <b>this</b>?"\n'
            "    Because <script>alert(1)</script>it is.\n\n"
            "    Text that a stray rule underlines <img src=x onerror=alert(3)> and that is\n"
            "    long enough to be read as prose rather than as a section name.\n    ---\n\n"
            '    !!! note "<span onclick=x>Heads up</span>"\n        Read <i>this</i>.\n\n'
            "| Question | Answer |\n|---|---|\n"
            "| Why <a href=\"javascript:alert(1)\">here</a>? | <img src=x onerror=alert(2)>No |"
            "\n")
    questions = parse_document(page, "markdown")
    assert [(q.question, q.answer) for q in questions] == [
        ("Why this?", "Because it is.\n\nText that a stray rule underlines and that is long "
         "enough to be read as prose rather than as a section name.\n\n> **Heads up**\n>\n"
         "> Read *this*."),
        ("Why here?", "No")]
    for q in questions:
        html = render_markdown(q.answer)
        assert "onerror" not in q.question + q.answer and "<script" not in html


def test_bootstrap_accordion_and_bold_questions_answered_on_the_same_line() -> None:
    pairs = _pairs("week21-accordion.html")
    assert [q for q, _ in pairs] == [
        "What is a pretext task?",  # an accordion's button in its header
        "Why does contrastive learning need negatives?",
        "Is the SimCLR batch size really 4096?",  # <strong>...?</strong> then the answer
        "Can I fine-tune with only 1% of the labels?",
    ]
    answers = dict(pairs)
    assert answers["Why does contrastive learning need negatives?"] == (
        "Without them every image could map to the same vector and the loss would still "
        "be zero.\n\nMethods such as BYOL avoid negatives with a predictor and a momentum "
        "encoder.")
    assert answers["Is the SimCLR batch size really 4096?"] == \
        "Yes, large batches give more negatives; on one GPU use a memory bank instead."
    # a list of things to check is part of the answer, not two questions
    assert answers["Can I fine-tune with only 1% of the labels?"].endswith(
        "Things to check when the loss collapses:\n\n- Is the temperature too high?\n\n"
        "- Are both views augmented differently?")
    assert not any("Back to top" in a or "Menu" in a or "Email" in a for _, a in pairs)


def test_markdown_list_questions_and_checklists() -> None:
    pairs = _pairs("week22-lists.md")
    assert [q for q, _ in pairs] == [
        "Why do we need a validation set?",  # a list item, its answer nested below it
        "Is the test set ever used for training?",
        "Why use AdamW instead of Adam?",  # bold, its answer on the same line
        "Should I warm up the learning rate?",
        "My loss is NaN after a few hundred steps.",
        "Why is accuracy a bad metric for imbalanced data?",  # a term and its ": definition"
        "What is label leakage?",
    ]
    answers = dict(pairs)
    assert answers["Is the test set ever used for training?"] == \
        "- Never, not even for early stopping."
    assert answers["Why use AdamW instead of Adam?"] == (
        "It decouples weight decay from the gradient step, so\nthe decay is the same for "
        "every parameter.")
    assert answers["My loss is NaN after a few hundred steps."] == (
        "Things to check, in this order:\n\n- Is the learning rate too high?\n"
        "- Are there NaNs or infinities in the inputs?\n"
        "- Do you take the log of a probability that can be 0?\n\n"
        "Most of the time it is the first one.")
    assert answers["Why is accuracy a bad metric for imbalanced data?"] == \
        "A model that always predicts the majority class scores high; report F1 instead."
    assert answers["What is label leakage?"].startswith("Information about the target")


def test_word_export_with_a_title_paragraph_and_styled_runs() -> None:
    pairs = _pairs("week23-word.html")
    assert [q for q, _ in pairs] == [
        "Why is my exported ONNX model slower than PyTorch?",
        "Does quantization hurt accuracy?",  # a Word list paragraph, its number a field
        "TorchScript vs ONNX",  # one bold topic in two runs, under the Q&A title
    ]
    answers = dict(pairs)
    assert answers["Why is my exported ONNX model slower than PyTorch?"].endswith(
        "Install `onnxruntime-gpu` and pass `providers=[\"CUDAExecutionProvider\"]`.")
    assert answers["TorchScript vs ONNX"].startswith("TorchScript stays inside")
    page = DATA / "week23-word.html"
    assert parse_document(page.read_text(encoding="utf-8"), "html")[0].tags == ["week-23"]
    assert not any("Teaching Team" in a or "Tuesday" in a for _, a in pairs)


def test_rendered_admonitions_the_first_text_of_a_question_element_asks() -> None:
    page = ('<h1>Week 3 FAQ</h1><details class="question"><summary>Why is my GPU idle?'
            "</summary><p>The data loader is the bottleneck: raise <code>num_workers</code>."
            '</p><p>Also pin memory.</p></details><div class="admonition question">'
            '<p class="admonition-title">What is a tensor core?</p><p>A unit for small '
            "matrix products.</p></div>")
    assert [(q.question, q.answer) for q in parse_document(page, "html")] == [
        ("Why is my GPU idle?",
         "The data loader is the bottleneck: raise `num_workers`.\n\nAlso pin memory."),
        ("What is a tensor core?", "A unit for small matrix products.")]


def test_rendered_sphinx_page_with_permalinks_admonitions_and_decorated_questions() -> None:
    pairs = _pairs("week24-sphinx.html")
    assert [q for q, _ in pairs] == [
        "Why do deep GNNs oversmooth?",  # its "¶" permalink dropped
        "How do I batch graphs of different sizes?",  # the emoji and "(asked 5 times)" too
    ]
    answers = dict(pairs)
    # a rendered admonition is an aside, quoted in the answer
    assert answers["Why do deep GNNs oversmooth?"].endswith(
        "looks alike.\n\n> Note\n\n> Residual connections and normalization slow this down.")
    assert answers["How do I batch graphs of different sizes?"].endswith(
        "belongs to:\n\n```\nloader = DataLoader(dataset, batch_size=32)\n```")
    assert not any("Sphinx" in a or "Week 23" in a or "¶" in q + a for q, a in pairs)


def test_jupyter_book_myst_directives() -> None:
    pairs = _pairs("week25-myst.md")
    assert [q for q, _ in pairs] == [
        "Why does my diffusion sampler produce noise?",  # ````{dropdown} Why...?
        "What is classifier-free guidance?",  # :::{admonition} What...?
        "Why is the FID worse with more sampling steps?",
    ]
    answers = dict(pairs)
    # the directive's options (":open:") go; a {code-cell} in it is code
    assert answers["Why does my diffusion sampler produce noise?"] == (
        "You are probably using the wrong noise schedule at sampling time.\n\n"
        "```python\nbetas = torch.linspace(1e-4, 0.02, 1000)\n```")
    assert answers["What is classifier-free guidance?"].startswith("Train with the condition")
    # {note} and {tip} are asides, outside any answer here
    assert not any("TAs" in a or "guidance scale" in a or "{" in a for _, a in pairs)


# --- hostile and awkward pages ------------------------------------------------------------
def test_a_short_answer_line_is_an_answer_and_a_one_line_pair_is_split() -> None:
    text_page = ("Week 4 FAQ\n\nQ: How do I submit the lab?\nA: Upload it to Canvas\n\n"
                 "Q: Can I work in pairs?\n\nA: Yes\n")
    assert [(q.question, q.answer) for q in parse_document(text_page, "text")] == [
        ("How do I submit the lab?", "Upload it to Canvas"), ("Can I work in pairs?", "Yes")]
    markdown_page = "# Week 4 FAQ\n\n**Q:** Can we pair up? **A:** Yes, in pairs.\n"
    assert [(q.question, q.answer) for q in parse_document(markdown_page, "markdown")] == [
        ("Can we pair up?", "Yes, in pairs.")]


def test_text_that_looks_like_markup_stays_text() -> None:
    html = ("<h2>Why does it fail?</h2><p>&lt;script&gt;alert(1)&lt;/script&gt; when x &lt; 3"
            " &lt;img src=x onerror=alert(1)&gt; <code>List&lt;int&gt;</code></p>"
            "<pre>```\n&lt;img src=x onerror=alert(1)&gt;\n```</pre>")
    answer = parse_document(html, "html")[0].answer
    prose = answer.split("````")[0]
    assert "<script" not in prose and "<img" not in prose
    assert "x < 3" in prose and "`List<int>`" in prose
    # the code block's fence is longer than any run of backticks inside it
    assert answer.endswith("````\n```\n<img src=x onerror=alert(1)>\n```\n````")
    markdown = ("## Why does it fail?\n\nSee [the docs](javascript:alert(document.cookie)) or "
                "<javascript:alert(1)>, and [the notes](https://example.org/notes).\n")
    answer = parse_document(markdown, "markdown")[0].answer
    assert "javascript" not in answer and "See the docs or" in answer
    assert "[the notes](https://example.org/notes)" in answer


def test_pages_nested_too_deep_get_a_clear_error(tmp_path: Path) -> None:
    from server.review.importer import PageError

    assert parse_document("---\nx: " + "[" * 600 + "\n---\n## Why not?\n\nNo.\n",
                          "markdown")[0].question == "Why not?"  # unreadable front matter
    with pytest.raises(PageError, match="too deeply"):
        parse_document("```{note}\n" * 300, "markdown")
    page = tmp_path / "deep.md"
    page.write_text(":::{note}\n" * 300, encoding="utf-8")
    result = CliRunner().invoke(import_command, [str(page), "--dry-run", "--no-overlaps"],
                                obj={"settings": Settings(kb_dir=tmp_path / "kb",
                                                          data_dir=tmp_path)})
    assert result.exit_code == 2 and "too deeply" in result.output
    assert "Traceback" not in result.output
