"""Ranking variants tried for a freshly imported week: does any lift top-1?

The answer-or-route decision cannot be both precise and answer as often as today on a
new week while the right entry ranks first for only about 0.79 of its questions
(README, "Decision on a week nobody tuned"), so these variants re-rank the top 8
candidates of the fused score (`Searcher.candidates`) and print top-1 on the `fresh`
set (the held-out week's pages imported and published as is, its 77 paraphrases) and
on the dev set against the bundled KB:

- ``fused``: today's order;
- ``hubness b=B k=K``: each candidate's score less B times its background, the mean of
  the K best scores the entry gets from the other entries' own phrasings (entries
  that are close to everything, "hubs", lose some of their pull; cross-domain
  similarity local scaling, as in word-translation retrieval). Uses the KB alone;
- with ``--rescorer DIR`` (a sentence-transformers model folder, for example
  all-mpnet-base-v2 joined from its PyPI parts): ``rescorer``, the candidates
  ordered by the larger model's best cosine to the entry's phrasings and answer, and
  ``fused+rescorer``, the sum of both scores; with its encode time per question.

Run: .venv/bin/python benchmarks/ranking_variants.py [--rescorer DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from indexer.decision import Candidate  # noqa: E402
from indexer.embedders import load_embedder  # noqa: E402
from indexer.evaluate import Labeled, load_labeled  # noqa: E402
from indexer.kb import KnowledgeBase  # noqa: E402
from indexer.search import Searcher, Thresholds  # noqa: E402
from server import evaluation  # noqa: E402

TOP = 8
Ranker = Callable[[str, np.ndarray, list[Candidate]], str]


def background(searcher: Searcher, k: int) -> dict[str, float]:
    """Each entry's mean of the k best scores it gets from other entries' phrasings."""
    pool = [(q, e.id) for e in searcher.kb.entries.values() if e.answerable for q in e.phrasings]
    got: dict[str, list[float]] = defaultdict(list)
    for (q, owner), v in zip(pool, searcher.embedder.embed([q for q, _ in pool]), strict=True):
        for c in searcher.candidates(q, v)[:20]:
            if c.entry_id != owner:
                got[c.entry_id].append(c.score)
    return {e: float(np.mean(sorted(s, reverse=True)[:k])) for e, s in got.items()}


class Rescorer:
    """A larger sentence-transformers model's cosine between a question and an entry."""

    def __init__(self, folder: Path):
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(folder), device="cpu")
        self.encode_ms: list[float] = []

    def index(self, searcher: Searcher) -> None:
        texts, self.owners = [], []
        for e in searcher.kb.entries.values():
            if e.answerable:
                texts += [*e.phrasings, e.answer]
                self.owners += [e.id] * (len(e.phrasings) + 1)
        self.vectors = self.model.encode(texts, normalize_embeddings=True, batch_size=32)

    def scores(self, question: str) -> dict[str, float]:
        t = time.perf_counter()
        q = self.model.encode([question], normalize_embeddings=True)[0]
        self.encode_ms.append((time.perf_counter() - t) * 1000)
        out: dict[str, float] = {}
        for owner, s in zip(self.owners, self.vectors @ q, strict=True):
            out[owner] = max(out.get(owner, -1.0), float(s))
        return out


def top1(searcher: Searcher, items: list[Labeled], rank: Ranker) -> float:
    asked = [i for i in items if i.expect]
    vectors = searcher.embedder.embed([i.question for i in asked])
    right = sum(rank(i.question, v, searcher.candidates(i.question, v)[:TOP]) == i.expect
                for i, v in zip(asked, vectors, strict=True))
    return right / len(asked)


def variants(searcher: Searcher, rescorer: Rescorer | None) -> dict[str, Ranker]:
    out: dict[str, Ranker] = {"fused": lambda q, v, cs: cs[0].entry_id}
    for k in (3, 10):
        bg = background(searcher, k)
        for b in (0.5, 1.0):
            out[f"hubness b={b} k={k}"] = (
                lambda q, v, cs, bg=bg, b=b:
                max(cs, key=lambda c: c.score - b * bg.get(c.entry_id, 0.0)).entry_id)
    if rescorer is not None:
        rescorer.index(searcher)

        def rescored(q: str, v: np.ndarray, cs: list[Candidate]) -> str:
            s = rescorer.scores(q)
            return max(cs, key=lambda c: s.get(c.entry_id, -1.0)).entry_id

        def fused(q: str, v: np.ndarray, cs: list[Candidate]) -> str:
            s = rescorer.scores(q)
            return max(cs, key=lambda c: c.score + s.get(c.entry_id, -1.0)).entry_id

        out["rescorer"], out["fused+rescorer"] = rescored, fused
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rescorer", type=Path, help="a sentence-transformers model folder")
    ap.add_argument("--dev", type=Path, default=REPO.parent / "shared/data/dev_questions.yaml")
    args = ap.parse_args()
    embedder = load_embedder()
    rescorer = Rescorer(args.rescorer) if args.rescorer else None
    kb_dir = REPO / "kb"
    fresh, _ = evaluation.fresh_week(kb_dir, embedder, Thresholds())
    bundled = evaluation.in_memory_searcher(KnowledgeBase.load(kb_dir), embedder, Thresholds())
    sets = [("fresh", fresh, load_labeled(evaluation.DATA / evaluation.FRESH_QUESTIONS))]
    if args.dev.exists():
        sets.append(("bundled-dev", bundled, load_labeled(args.dev)))
    results: dict[str, dict[str, float]] = defaultdict(dict)
    for name, searcher, items in sets:
        for variant, rank in variants(searcher, rescorer).items():
            results[variant][name] = top1(searcher, items, rank)
    print(f"top-1 over the top {TOP} candidates ({embedder.name})")
    print(f"  {'variant':<22}" + "".join(f"{name:>14}" for name, _, _ in sets))
    for variant, row in results.items():
        print(f"  {variant:<22}" + "".join(f"{row[name]:>14.3f}" for name, _, _ in sets))
    if rescorer is not None:
        print(f"  rescorer encode p50 {np.percentile(rescorer.encode_ms, 50):.1f} ms a question")


if __name__ == "__main__":
    main()
