"""Metrics over a labeled question file (the format of shared/data/dev_questions.yaml).

Each item is {q: question, expect: entry id, or null when the bot should route
the question to the TAs instead of answering}.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from indexer.kb import KnowledgeBaseError, Problem
from indexer.search import Searcher, SearchResult, Thresholds, index_identity


@dataclass(frozen=True)
class Labeled:
    question: str
    expect: str | None


@dataclass
class Outcome:
    question: str
    expect: str | None
    top: str | None
    top_any: str | None  # best entry of any status (an unanswered one is always routed)
    answered: bool
    answer: str | None
    score: float
    margin: float
    rank: int | None  # 1-based rank of the expected entry among the hits, if present

    @property
    def correct(self) -> bool:
        """Answer-or-route correct: the right entry answered, or an unanswerable one routed."""
        return self.answer == self.expect if self.expect else not self.answered


@dataclass
class Report:
    """What `askta eval` prints."""

    total: int
    answerable: int
    top1: float
    mrr: float
    answered_precision: float
    answered_rate: float
    route_accuracy: float
    overall: float
    wrong: list[Outcome] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["wrong"] = [asdict(o) for o in self.wrong]
        return d


def load_labeled(path: Path | str) -> list[Labeled]:
    """Read a labeled question file; KnowledgeBaseError names a bad line."""
    path = Path(path)
    try:
        items = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as e:
        raise KnowledgeBaseError([Problem(str(path), None, None, f"cannot be read: {e}")]) from None
    if not isinstance(items, list):
        raise KnowledgeBaseError(
            [Problem(str(path), None, None, "should be a list of {q: ..., expect: ...} items")]
        )
    out = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict) or not isinstance(item.get("q"), str) or "expect" not in item:
            raise KnowledgeBaseError(
                [
                    Problem(
                        str(path),
                        None,
                        f"item {n}",
                        "needs q: <question> and expect: <entry id or null>",
                    )
                ]
            )
        out.append(Labeled(item["q"], item["expect"]))
    return out


def outcome(item: Labeled, result: SearchResult) -> Outcome:
    ids = [h.entry_id for h in result.hits]
    if result.hits == [] and result.entry is not None:
        ids = [result.entry.id]
    rank = ids.index(item.expect) + 1 if item.expect in ids else None
    return Outcome(
        question=item.question,
        expect=item.expect,
        top=ids[0] if ids else None,
        top_any=result.top_id,
        answered=result.answered,
        answer=result.entry.id if result.entry else None,
        score=round(result.score, 4),
        margin=round(result.margin, 4),
        rank=rank,
    )


def score(outcomes: list[Outcome]) -> Report:
    """Compute the metrics.

    top-1 and MRR: over answerable questions, ranking only (ignores the decision).
    answered precision: of the questions answered, the share answered with the right entry.
    route accuracy: of the questions that should be routed, the share routed.
    overall: the share of all questions whose answer-or-route outcome is right.
    """
    answerable = [o for o in outcomes if o.expect]
    unanswerable = [o for o in outcomes if not o.expect]
    answered = [o for o in outcomes if o.answered]

    def ratio(a: int, b: int) -> float:
        return round(a / b, 4) if b else 0.0

    return Report(
        total=len(outcomes),
        answerable=len(answerable),
        top1=ratio(sum(o.rank == 1 for o in answerable), len(answerable)),
        mrr=round(sum(1 / o.rank for o in answerable if o.rank) / len(answerable), 4)
        if answerable
        else 0.0,
        answered_precision=ratio(sum(o.answer == o.expect for o in answered), len(answered)),
        answered_rate=ratio(len(answered), len(outcomes)),
        route_accuracy=ratio(sum(not o.answered for o in unanswerable), len(unanswerable)),
        overall=ratio(sum(o.correct for o in outcomes), len(outcomes)),
        wrong=[o for o in outcomes if not o.correct or (o.expect and o.rank != 1)],
    )


def evaluate(searcher: Searcher, items: list[Labeled]) -> Report:
    """Run every labeled question through the searcher and score the outcomes."""
    return score([outcome(item, searcher.search(item.question, k=10)) for item in items])


@dataclass
class Calibration:
    """The thresholds that `askta eval --calibrate` recommends, and what they achieve."""

    score: float
    margin: float
    overall: float
    answered_precision: float
    score_range: tuple[float, float]


def calibrate(
    outcomes: list[Outcome], thresholds: Thresholds, min_precision: float = 0.97
) -> Calibration:
    """Grid-search the score and margin thresholds on labeled outcomes.

    Among the settings with the best overall accuracy (and answered precision at
    least `min_precision`), take the largest margin up to 0.05 (a guard against
    answering with the wrong one of two close entries) and the middle of the widest
    run of equally good score thresholds: the choice furthest from both kinds of
    mistake, so it carries over best to questions the set does not contain.
    """
    margins = [round(m * 0.01, 2) for m in range(0, 16)]
    scores = [round(0.30 + s * 0.005, 3) for s in range(0, 121)]
    best: tuple[float, float] | None = None
    table: dict[tuple[float, float], tuple[float, float]] = {}
    for m in margins:
        for s in scores:
            t = thresholds.replace(score=s, margin=m)
            right = answered = answered_right = 0
            for o in outcomes:
                ans = o.top_any == o.top and o.top is not None and t.decide(o.score, o.margin)
                answered += ans
                answered_right += ans and o.top == o.expect
                right += (o.top == o.expect) if ans else (o.expect is None)
            prec = answered_right / answered if answered else 0.0
            table[(m, s)] = (right / len(outcomes), prec)
            if prec >= min_precision and (best is None or right / len(outcomes) >= best[0]):
                if best is None or right / len(outcomes) > best[0] or m <= 0.05:
                    best = (right / len(outcomes), m)
    if best is None:
        return Calibration(thresholds.score, thresholds.margin, 0.0, 0.0, (0.0, 0.0))
    top, margin = best
    runs: list[list[float]] = [[]]
    for s in scores:
        acc, prec = table[(margin, s)]
        if acc == top and prec >= min_precision:
            runs[-1].append(s)
        elif runs[-1]:
            runs.append([])
    widest = max(runs, key=len)
    mid = round((widest[0] + widest[-1]) / 2, 3)
    return Calibration(
        mid, margin, round(top, 4), round(table[(margin, widest[0])][1], 4), (widest[0], widest[-1])
    )


def leave_one_out(searcher: Searcher) -> Report:
    """Hold out each alternate question in turn and ask it: how well phrasings generalize.

    Works on an in-memory copy of the index; nothing is written. The held-out
    phrasing is removed from its entry (dense vectors and BM25 alike) while it
    is asked, so the score is what a new student's wording would get.
    """
    from indexer.index import VectorIndex
    from indexer.kb import KnowledgeBase

    kb = KnowledgeBase(searcher.kb.kb_dir, searcher.kb.project_dir, searcher.kb.entries)
    embedder = searcher.embedder
    copy = Searcher(
        kb,
        embedder,
        VectorIndex(embedder.dimension, index_identity(embedder)),
        searcher.thresholds,
        decision=searcher.decision,
    )
    copy.sync()
    outcomes = []
    for entry in list(kb.published()):
        for i, phrasing in enumerate(entry.alternate_questions):
            held_out = entry.model_copy(
                update={
                    "alternate_questions": [
                        q for j, q in enumerate(entry.alternate_questions) if j != i
                    ]
                }
            )
            kb.remember([held_out])
            copy.upsert(held_out)
            outcomes.append(outcome(Labeled(phrasing, entry.id), copy.search(phrasing, k=10)))
            kb.remember([entry])
            copy.upsert(entry)
    return score(outcomes)
