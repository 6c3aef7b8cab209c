"""What the confidence model costs a question: one search with and without it.

Prints p50/p99 of the bare encode of one query, of a search with the score and
margin rule alone, and of a search with the shipped confidence model
(indexer/decision.json: features of every candidate, one logistic model),
alternating query by query on the bundled KB.
Run: .venv/bin/python benchmarks/decision_cost.py [-n 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.decision import DecisionModel  # noqa: E402
from indexer.embedders import load_embedder  # noqa: E402
from indexer.kb import KnowledgeBase  # noqa: E402
from indexer.search import Searcher  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
QUERIES = ["why do we need relu", "how does batch normalization work",
           "what is the capital of italy", "is the gradient zero at the end of training",
           "how do I pad sequences of different length", "mse outliers"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="searches per measurement")
    args = parser.parse_args()
    embedder = load_embedder("", "auto")
    decision = DecisionModel.for_embedder(embedder.name)
    if decision is None:
        sys.exit(f"indexer/decision.json was not fitted for {embedder.name}")
    searcher = Searcher.open(KnowledgeBase.load(REPO / "kb"), embedder, None)
    encode, rule, model = [], [], []
    for i in range(args.n):
        q = QUERIES[i % len(QUERIES)]
        vector = embedder.embed([q])[0]
        t = time.perf_counter()
        embedder.embed([q])
        encode.append(time.perf_counter() - t)
        searcher.decision = None
        t = time.perf_counter()
        searcher.search_vector(q, vector)
        rule.append(time.perf_counter() - t)
        searcher.decision = decision
        t = time.perf_counter()
        searcher.search_vector(q, vector)
        model.append(time.perf_counter() - t)
    for label, samples in (("bare encode", encode), ("search after encode, rule", rule),
                           ("search after encode, confidence model", model)):
        ms = np.asarray(samples) * 1000
        p50, p99 = np.percentile(ms, 50), np.percentile(ms, 99)
        print(f"{label:<40} p50 {p50:7.3f} ms   p99 {p99:7.3f} ms")


if __name__ == "__main__":
    main()
