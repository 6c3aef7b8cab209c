"""indexer/search.py: the answer-or-route decision."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from indexer.embedders import HashingEmbedder
from indexer.kb import KnowledgeBase
from indexer.search import Searcher, Thresholds
from tests.indexer.test_kb import write

UNANSWERED = """\
id: {id}
question: {question}
alternate_questions:
  - {alt}
answer: ""
tags: []
status: unanswered
"""


def searcher(tmp_path: Path, **thresholds: float) -> Searcher:
    kb_dir = tmp_path / "kb"
    write(kb_dir, "relu", question="Why do we need ReLU nonlinearities?", alt="what is relu for")
    write(
        kb_dir,
        "calendar",
        question="Where is the course calendar with due dates?",
        alt="when is homework due",
    )
    write(
        kb_dir,
        "sgd-limits",
        UNANSWERED,
        question="What are the limitations of SGD?",
        alt="sgd drawbacks",
    )
    return Searcher.open(
        KnowledgeBase.load(kb_dir), HashingEmbedder(), thresholds=Thresholds().replace(**thresholds)
    )


def test_exact_question_is_answered(tmp_path: Path) -> None:
    result = searcher(tmp_path).search("Why do we need ReLU nonlinearities?")
    assert result.answered and result.entry and result.entry.id == "relu"
    assert result.score > 0.99 and result.margin > 0
    assert [h.entry_id for h in result.suggestions] != ["relu"]


def test_unanswered_entries_are_never_returned(tmp_path: Path) -> None:
    s = searcher(tmp_path, score=0.0, margin=0.0)
    result = s.search("What are the limitations of SGD?")
    assert not result.answered and result.entry is None
    assert result.pending_entry == "sgd-limits"
    assert "waiting for an answer" in result.reason
    assert all(h.entry_id != "sgd-limits" for h in result.hits)


def test_low_score_routes(tmp_path: Path) -> None:
    result = searcher(tmp_path, score=0.9).search("qwertyuiop zxcv")
    assert not result.answered and result.entry is None
    assert "below 0.90" in result.reason


def test_close_call_routes(tmp_path: Path) -> None:
    # a margin no pair of entries can clear, and no "confident" shortcut
    s = searcher(tmp_path, score=0.0, margin=1.5, confident=2.0)
    result = s.search("why do we need relu")
    assert not result.answered and "too close to call" in result.reason


def test_empty_question(tmp_path: Path) -> None:
    result = searcher(tmp_path).search("   ")
    assert not result.answered and result.reason == "the question is empty"


def test_thresholds_decide() -> None:
    t = Thresholds(score=0.5, margin=0.1, confident=0.8)
    assert t.decide(0.6, 0.2) and not t.decide(0.6, 0.05) and t.decide(0.85, 0.0)
    assert not t.decide(0.4, 0.5)


def test_exact_words_add_a_lexical_bonus(tmp_path: Path) -> None:
    s = searcher(tmp_path)
    with_bonus = s.search("relu nonlinearities")
    without = s.search_vector("", s.embedder.embed(["relu nonlinearities"])[0])
    assert with_bonus.top_id == "relu"
    assert with_bonus.score > without.score  # BM25 found the words; the dense score alone is lower
    bm25 = s.lexical.scores("relu nonlinearities")
    assert set(bm25) == {"relu"} and bm25["relu"] > 0


def test_lexical_index_follows_updates(tmp_path: Path) -> None:
    s = searcher(tmp_path)
    entry = s.kb.add_alternate("calendar", "zyzzyva deadline")
    s.upsert(entry)
    assert "calendar" in s.lexical.scores("zyzzyva")
    s.remove("calendar")
    assert s.lexical.scores("zyzzyva") == {}


def test_the_writer_rebuilds_bm25_so_questions_do_not(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import bm25s

    s = searcher(tmp_path)
    builds = []
    real_index = bm25s.BM25.index
    monkeypatch.setattr(bm25s.BM25, "index",
                        lambda self, *a, **k: builds.append(1) or real_index(self, *a, **k))
    s.upsert(s.kb.add_alternate("calendar", "zyzzyva deadline"))
    assert builds == [1]
    assert "calendar" in s.lexical.scores("zyzzyva") and s.search("zyzzyva").top_id == "calendar"
    assert builds == [1]  # the question used the writer's index


def test_questions_are_answered_while_a_change_is_embedded_and_saved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A TA's change holds searches up only while the index changes in memory:
    embedding the entry and saving the index (seconds for a large one) run beside them."""
    searcher(tmp_path)  # writes the KB
    s = Searcher.open(KnowledgeBase.load(tmp_path / "kb"), HashingEmbedder(),
                      index_dir=tmp_path / "index")
    in_save, in_embed, release = threading.Event(), threading.Event(), threading.Event()
    real_save, real_embed = s.index.save_entry, s.embedder.embed

    def slow_save(*args: object) -> None:
        in_save.set()
        release.wait(10)
        real_save(*args)  # type: ignore[arg-type]

    def slow_embed(texts: list[str]) -> np.ndarray:
        if len(texts) > 1:  # the entry's texts, not a question
            in_embed.set()
            release.wait(10)
        return real_embed(texts)

    monkeypatch.setattr(s.index, "save_entry", slow_save)
    monkeypatch.setattr(s.embedder, "embed", slow_embed)
    for stage in (in_embed, in_save):
        release.clear()
        writer = threading.Thread(
            target=s.upsert, args=(s.kb.add_alternate("calendar", f"when {stage} due"),))
        writer.start()
        assert stage.wait(10)
        asked: list[str | None] = []

        def ask(into: list[str | None] = asked) -> None:
            into.append(s.search("what is relu for").top_id)

        reader = threading.Thread(target=ask)
        reader.start()
        reader.join(5)
        answered_meanwhile = not reader.is_alive()
        release.set()
        writer.join(10)
        reader.join(10)
        assert answered_meanwhile and asked == ["relu"]
        stage.clear()
    assert s.search("when is homework due").top_id == "calendar"


def test_suggestions_only_close_runners_up_when_answered(tmp_path: Path) -> None:
    from indexer.search import CLOSE_RUNNER_UP

    s = searcher(tmp_path, score=0.0, margin=0.0, suggest=-1.0)
    result = s.search("Why do we need ReLU nonlinearities?")
    assert result.answered and {h.entry_id for h in result.hits} == {"relu", "calendar"}
    calendar = next(h for h in result.hits if h.entry_id == "calendar")
    assert calendar.score < result.score - CLOSE_RUNNER_UP  # far behind: no "did you mean"
    assert result.suggestions == []
    s.thresholds = s.thresholds.replace(score=5.0)
    routed = s.search("Why do we need ReLU nonlinearities?")
    assert not routed.answered and routed.suggestions == routed.hits


def test_query_tokens_match_the_index_tokenizer() -> None:
    import bm25s

    from indexer.lexical import query_tokens

    for text in ["How big is the weight matrix of nn.Linear and why?", "what's ReLU's x_2 for",
                 "É l'été — naïve café", "a I", "", "pad_sequence vs. torch.stack (dim=0)"]:
        expected = bm25s.tokenize([text], stopwords="en", show_progress=False,
                                  return_ids=False)[0]
        assert query_tokens(text) == expected, text


def with_model(s: Searcher, *, decides: bool, answer_at: float = 0.5,
               near_at: float = 0.0, gate_at: float = 0.0) -> Searcher:
    """The searcher with a confidence model whose probability grows with the fused score."""
    from indexer.decision import FEATURES, DecisionModel

    n = len(FEATURES)
    weights = [0.0] * n
    weights[FEATURES.index("score")] = 8.0
    s.decision = DecisionModel(s.embedder.name, [0.6] + [0.0] * (n - 1), [1.0] * n, weights,
                               0.0, answer_at, near_at, decides=decides, gate_at=gate_at)
    return s


def test_a_confidence_model_orders_and_offers_the_near_miss(tmp_path: Path) -> None:
    s = with_model(searcher(tmp_path), decides=False, near_at=0.0)
    result = s.search("relu calendar due")
    assert not result.answered  # two entries too close to call: the rule still decides
    confidences = [h.confidence for h in result.hits]
    assert all(c is not None for c in confidences)
    assert confidences == sorted(confidences, reverse=True)  # type: ignore[type-var]
    assert result.near_miss is not None and result.near_miss.entry_id == result.hits[0].entry_id
    assert s.search("Why do we need ReLU nonlinearities?").near_miss is None  # answered


def test_a_deciding_model_answers_by_its_probability(tmp_path: Path) -> None:
    s = with_model(searcher(tmp_path), decides=True, answer_at=0.999999)
    result = s.search("Why do we need ReLU nonlinearities?")
    assert not result.answered and "confidence" in result.reason  # its cut is out of reach
    s = with_model(s, decides=True, answer_at=0.5)
    result = s.search("Why do we need ReLU nonlinearities?")
    assert result.answered and result.entry is not None and result.entry.id == "relu"
    assert result.confidence is not None and result.confidence >= 0.5


def test_the_gate_routes_an_answer_of_the_rule_that_is_unlikely(tmp_path: Path) -> None:
    question = "Why do we need ReLU nonlinearities?"
    answered = with_model(searcher(tmp_path), decides=False).search(question)
    assert answered.answered and answered.confidence is not None  # no gate: the rule answers
    s = with_model(searcher(tmp_path), decides=False, gate_at=answered.confidence + 0.01)
    gated = s.search(question)
    assert not gated.answered and gated.entry is None
    assert f"confidence {answered.confidence:.2f} is below" in gated.reason
    assert gated.near_miss is not None and gated.near_miss.entry_id == "relu"  # still offered
    s = with_model(searcher(tmp_path), decides=False, gate_at=answered.confidence - 0.01)
    assert s.search(question).answered
