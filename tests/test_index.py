"""indexer/index.py and Searcher sync: persistence, manifest checks, incremental updates."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer.embed import HashingEmbedder
from indexer.index import IVF_NPROBE, IndexMismatch, Row, VectorIndex
from indexer.kb import KnowledgeBase
from indexer.schema import Entry
from indexer.search import Searcher
from tests.test_kb import write


class CountingEmbedder(HashingEmbedder):
    """The fake embedder, counting how many texts it encoded."""

    def __init__(self, dimension: int = 64):
        super().__init__(dimension)
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += len(texts)
        return super().embed(texts)


def small_kb(tmp_path: Path, n: int = 3) -> KnowledgeBase:
    kb_dir = tmp_path / "kb"
    for i in range(n):
        write(
            kb_dir,
            f"entry-{i}",
            question=f"Question number {i} about topic{i}?",
            alt=f"alt phrasing {i} topic{i}",
        )
    return KnowledgeBase.load(kb_dir)


def test_add_remove_search() -> None:
    emb = HashingEmbedder(32)
    index = VectorIndex(32, emb.name)
    index.add(
        "a",
        [Row("a", "question", "alpha"), Row("a", "answer", "beta")],
        emb.embed(["alpha", "beta"]),
    )
    index.add("b", [Row("b", "question", "gamma")], emb.embed(["gamma"]))
    assert len(index) == 3
    best = index.best_per_entry(emb.embed(["alpha"])[0])
    assert best["a"][0] == pytest.approx(1.0, abs=1e-5)  # cosine of a unit vector with itself
    assert best["a"][1].kind == "question"
    index.remove("a")
    assert len(index) == 1 and set(index.best_per_entry(emb.embed(["alpha"])[0])) == {"b"}


def test_save_load_and_mismatch(tmp_path: Path) -> None:
    emb = HashingEmbedder(32)
    index = VectorIndex(32, emb.name)
    index.add("a", [Row("a", "question", "alpha")], emb.embed(["alpha"]), "h1")
    index.save(tmp_path / "ix")
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["model"] == emb.name and manifest["dimension"] == 32
    loaded = VectorIndex.load(tmp_path / "ix", model=emb.name, dimension=32)
    assert loaded.entry_hashes == {"a": "h1"} and len(loaded) == 1
    with pytest.raises(IndexMismatch, match="built with"):
        VectorIndex.load(tmp_path / "ix", model="other-model", dimension=32)
    (tmp_path / "ix" / "rows.json").write_text("{broken")
    with pytest.raises(IndexMismatch):
        VectorIndex.load(tmp_path / "ix", model=emb.name, dimension=32)


def test_startup_rebuilds_only_what_changed(tmp_path: Path) -> None:
    kb = small_kb(tmp_path)
    emb = CountingEmbedder()
    first = Searcher.open(kb, emb, tmp_path / "ix")
    assert first.stats["added"] == 3 and emb.calls > 0
    # unchanged KB: nothing is embedded again
    emb.calls = 0
    again = Searcher.open(KnowledgeBase.load(kb.kb_dir), emb, tmp_path / "ix")
    assert emb.calls == 0 and again.stats == {**again.stats, "added": 0, "changed": 0, "removed": 0}
    # one entry edited, one removed, one added: only the edited and the new are embedded
    write(kb.kb_dir, "entry-1", question="A rewritten question about topic1?", alt="changed alt")
    (kb.kb_dir / "entry-2.yaml").unlink()
    write(kb.kb_dir, "entry-9", question="Brand new question topic9?", alt="new alt")
    emb.calls = 0
    updated = Searcher.open(KnowledgeBase.load(kb.kb_dir), emb, tmp_path / "ix")
    assert (updated.stats["added"], updated.stats["changed"], updated.stats["removed"]) == (1, 1, 1)
    per_entry = len(updated.index.entry_ids["entry-1"])
    assert emb.calls == per_entry + len(updated.index.entry_ids["entry-9"])
    assert set(updated.index.entry_ids) == {"entry-0", "entry-1", "entry-9"}


def test_manifest_model_mismatch_triggers_rebuild(tmp_path: Path) -> None:
    kb = small_kb(tmp_path)
    Searcher.open(kb, CountingEmbedder(64), tmp_path / "ix")
    other = CountingEmbedder(48)
    rebuilt = Searcher.open(kb, other, tmp_path / "ix")
    assert rebuilt.stats["added"] == 3 and other.calls > 0
    assert json.loads((tmp_path / "ix" / "manifest.json").read_text())["dimension"] == 48


def test_upsert_is_incremental_and_persisted(tmp_path: Path) -> None:
    kb = small_kb(tmp_path)
    emb = CountingEmbedder()
    searcher = Searcher.open(kb, emb, tmp_path / "ix")
    emb.calls = 0
    entry = kb.add_alternate("entry-0", "zebra crossing quokka")
    searcher.upsert(entry)
    assert emb.calls == len(searcher.index.entry_ids["entry-0"])  # one entry, not the KB
    assert searcher.search("zebra crossing quokka").hits[0].entry_id == "entry-0"
    emb.calls = 0
    reopened = Searcher.open(KnowledgeBase.load(kb.kb_dir), emb, tmp_path / "ix")
    assert emb.calls == 0 and reopened.stats["changed"] == 0


def test_draft_entries_are_not_indexed(tmp_path: Path) -> None:
    kb = small_kb(tmp_path)
    searcher = Searcher.open(kb, HashingEmbedder(), None)
    draft = Entry(
        id="entry-0", question="Question number 0 about topic0?", answer="x", status="draft"
    )
    kb.entries["entry-0"] = draft
    searcher.upsert(draft)
    assert "entry-0" not in searcher.index.entry_ids


def test_batching_embedder_groups_concurrent_questions() -> None:
    import threading

    from indexer.embed import BatchingEmbedder

    class Slow(CountingEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.batches: list[int] = []

        def embed(self, texts: list[str]) -> np.ndarray:
            self.batches.append(len(texts))
            threading.Event().wait(0.05)
            return super().embed(texts)

    inner = Slow()
    batching = BatchingEmbedder(inner)
    texts = [f"question {i}" for i in range(16)]
    out: dict[int, np.ndarray] = {}
    threads = [
        threading.Thread(target=lambda i=i: out.__setitem__(i, batching.embed([texts[i]])))
        for i in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(out) == 16
    for i in range(16):  # every caller got its own vector back
        assert np.allclose(out[i][0], HashingEmbedder(64).embed([texts[i]])[0])
    assert len(inner.batches) < 16 and sum(inner.batches) == 16


def test_large_index_is_partitioned_and_stays_incremental(tmp_path: Path) -> None:
    emb = HashingEmbedder(32)
    index = VectorIndex(32, emb.name)
    rng = np.random.default_rng(1)
    for i in range(300):
        vectors = rng.standard_normal((4, 32)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index.add(f"e{i}", [Row(f"e{i}", "question", "")] * 4, vectors)
    assert not index.optimize(min_vectors=10_000) and index.kind == "flat"
    assert index.optimize(min_vectors=1000) and index.kind == "ivf"
    assert len(index) == 1200
    index.add("target", [Row("target", "question", "alpha")], emb.embed(["alpha"]))
    best = index.best_per_entry(emb.embed(["alpha"])[0])
    assert best["target"][0] == pytest.approx(1.0, abs=1e-5)
    index.remove("target")
    assert "target" not in index.best_per_entry(emb.embed(["alpha"])[0]) and len(index) == 1200
    index.save(tmp_path / "ix")
    loaded = VectorIndex.load(tmp_path / "ix", model=emb.name, dimension=32)
    assert loaded.kind == "ivf" and len(loaded) == 1200
    assert faiss.downcast_index(loaded._index).nprobe == IVF_NPROBE
    loaded.add("again", [Row("again", "question", "alpha")], emb.embed(["alpha"]))
    assert loaded.best_per_entry(emb.embed(["alpha"])[0])["again"][0] == pytest.approx(
        1.0, abs=1e-5
    )
    assert json.loads((tmp_path / "ix" / "manifest.json").read_text())["kind"] == "ivf"


def test_a_new_text_recipe_rebuilds_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import indexer.search

    kb = small_kb(tmp_path)
    Searcher.open(kb, CountingEmbedder(), tmp_path / "ix")
    monkeypatch.setattr(indexer.search, "TEXTS_VERSION", indexer.search.TEXTS_VERSION + 1)
    emb = CountingEmbedder()
    rebuilt = Searcher.open(KnowledgeBase.load(kb.kb_dir), emb, tmp_path / "ix")
    assert rebuilt.stats["added"] == 3 and emb.calls > 0
