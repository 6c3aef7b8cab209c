"""Retrieval speed: one search at the bundled KB and at 10k / 100k synthetic entries.

Prints p50/p99 of one full search (encode + FAISS + decision), the bare encode
of one query beside it, index build time per 1k entries, what persisting costs
(a whole snapshot against one entry's change in the journal), and memory.
Run: .venv/bin/python benchmarks/retrieval.py [--quick] [--encoder auto|onnx|torch]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.embedders import load_embedder  # noqa: E402
from indexer.index import Row  # noqa: E402
from indexer.kb import KnowledgeBase  # noqa: E402
from indexer.schema import Entry  # noqa: E402
from indexer.search import Searcher  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
QUERIES = [
    "why do we need relu",
    "is the gradient zero at the end of training",
    "how big is the weight matrix of nn.Linear",
    "when is the homework due",
    "what is the capital of italy",
    "how do I pad sequences of different length",
    "why not use more layers",
    "can a tensor share memory with numpy",
]
TEXTS_PER_ENTRY = 6  # question + 4 alternates + answer, like the bundled entries


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def time_calls(fn, n: int) -> list[float]:  # type: ignore[no-untyped-def]
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def persist_costs(searcher: Searcher, size: int, rng: np.random.Generator) -> str:
    """Time a full snapshot of the index against one entry's change in the journal."""
    with tempfile.TemporaryDirectory(prefix="askta-bench-index-") as tmp:
        directory = Path(tmp)
        t = time.perf_counter()
        searcher.index.save(directory)
        snapshot_s = time.perf_counter() - t
        snapshot_mb = sum(f.stat().st_size for f in directory.iterdir()) / 2**20
        changes = []
        for i in range(20):  # a TA links 20 questions: each re-saves one entry
            synthetic(searcher, i, i + 1, rng)
            t = time.perf_counter()
            searcher.index.save_entry(directory, f"synthetic-{i}")
            changes.append(time.perf_counter() - t)
    return (f"{size // 1000}k entries: snapshot {snapshot_s:.2f} s ({snapshot_mb:.0f} MB), "
            f"one entry's change {pct(changes, 50):.2f} ms (p50 of 20, journal)")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic(searcher: Searcher, start: int, stop: int, rng: np.random.Generator) -> None:
    """Add synthetic entries start..stop-1 with random unit vectors (search cost is the same)."""
    dim = searcher.embedder.dimension
    searcher.kb.remember(
        Entry(id=f"synthetic-{i}", question=f"Synthetic question {i}?", answer="x")
        for i in range(start, stop)
    )
    for i in range(start, stop):
        entry_id = f"synthetic-{i}"
        vectors = rng.standard_normal((TEXTS_PER_ENTRY, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        rows = [Row(entry_id, "question", "")] * TEXTS_PER_ENTRY
        searcher.index.add(entry_id, rows, vectors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no 100k")
    parser.add_argument("-n", type=int, default=200, help="searches per measurement")
    parser.add_argument("--encoder", default="auto", choices=["auto", "onnx", "torch"],
                        help="what runs the model (default auto, as the server)")
    args = parser.parse_args()
    n = 50 if args.quick else args.n

    t = time.perf_counter()
    embedder = load_embedder("", args.encoder).inner  # type: ignore[attr-defined]
    load_s = time.perf_counter() - t
    embedder.embed(["warm up"])

    kb = KnowledgeBase.load(REPO / "kb")
    kb_size = len(kb)
    t = time.perf_counter()
    searcher = Searcher.open(kb, embedder, None)
    bundled_build = time.perf_counter() - t

    # Encode and search alternate, query by query, so both see the same machine state.
    encode, bundled = [], []
    for i in range(n):
        query = QUERIES[i % len(QUERIES)]
        encode += time_calls(lambda _, q=query: embedder.embed([q]), 1)
        bundled += time_calls(lambda _, q=query: searcher.search(q), 1)
    rows = [
        ("bare encode of one query", encode, 0),
        ("search, bundled KB", bundled, len(searcher.index)),
    ]
    rng = np.random.default_rng(0)
    sizes = [10_000] if args.quick else [10_000, 100_000]
    added = 0
    persist: list[str] = []
    for size in sizes:
        synthetic(searcher, added, size, rng)
        added = size
        searcher.index.optimize()  # as Searcher.sync does: IVF past IVF_MIN_VECTORS
        rows.append(
            (
                f"search, {size // 1000}k entries ({searcher.index.kind})",
                time_calls(lambda i: searcher.search(QUERIES[i % 8]), n),
                len(searcher.index),
            )
        )
        persist.append(persist_costs(searcher, size, rng))

    # Build time with the real model: 1k synthetic entries of 6 short texts each.
    build_kb = KnowledgeBase(REPO / "kb", REPO)
    words = "gradient layer tensor loss batch weight bias relu model data train epoch".split()
    synthetic_entries = []
    for i in range(1000):
        alts = [" ".join(rng.choice(words, 6)) + f" {i} {j}?" for j in range(4)]
        synthetic_entries.append(Entry(
            id=f"e-{i}",
            question=alts[0] + " q",
            answer=" ".join(rng.choice(words, 40)),
            alternate_questions=alts,
        ))
    build_kb.remember(synthetic_entries)
    t = time.perf_counter()
    Searcher.open(build_kb, embedder, None)
    build_1k = time.perf_counter() - t

    print(
        f"model load ({embedder.runtime}) {load_s:.2f} s; bundled KB ({kb_size} entries) "
        f"indexed in {bundled_build:.2f} s"
    )
    print(f"{'measurement':<34}{'vectors':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for label, samples, vectors in rows:
        print(f"{label:<34}{vectors:>10}{pct(samples, 50):>10.2f}{pct(samples, 99):>10.2f}")
    base = statistics.median(encode)
    for label, samples, _ in rows[1:]:
        print(
            f"  {label}: median search / median encode = {statistics.median(samples) / base:.2f}x"
        )
    print(
        f"index build with the real model: {build_1k:.1f} s per 1k entries "
        f"({1000 * TEXTS_PER_ENTRY} texts)"
    )
    for line in persist:
        print(f"persisting, {line}")
    print(f"peak RSS: {rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
