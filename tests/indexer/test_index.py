"""indexer/index.py and Searcher sync: persistence, manifest checks, incremental updates."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from indexer.embedders import HashingEmbedder
from indexer.index import IVF_NPROBE, IndexMismatch, Row, VectorIndex
from indexer.kb import KnowledgeBase
from indexer.schema import Entry
from indexer.search import Searcher
from tests.indexer.test_kb import write


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
    best = index.hits_per_entry(emb.embed(["alpha"])[0])
    assert best["a"].best == pytest.approx(1.0, abs=1e-5)  # cosine of a unit vector with itself
    assert best["a"].row.kind == "question"
    index.remove("a")
    assert len(index) == 1 and set(index.hits_per_entry(emb.embed(["alpha"])[0])) == {"b"}


def test_a_search_puts_the_threads_openmp_setting_back() -> None:
    """faiss searches on one thread, then restores the count: with torch loaded first,
    the setting is torch's too, and the encoder on this thread would lose its cores."""
    emb = HashingEmbedder(32)
    index = VectorIndex(32, emb.name)
    index.add("a", [Row("a", "question", "alpha")], emb.embed(["alpha"]))
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(3)
        index.hits_per_entry(emb.embed(["alpha"])[0])
        assert faiss.omp_get_max_threads() == 3
    finally:
        faiss.omp_set_num_threads(before)


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
    kb.remember([draft])
    searcher.upsert(draft)
    assert "entry-0" not in searcher.index.entry_ids


def test_batching_embedder_groups_concurrent_questions() -> None:
    import threading

    from indexer.embedders import BatchingEmbedder

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
    best = index.hits_per_entry(emb.embed(["alpha"])[0])
    assert best["target"].best == pytest.approx(1.0, abs=1e-5)
    index.remove("target")
    assert "target" not in index.hits_per_entry(emb.embed(["alpha"])[0]) and len(index) == 1200
    index.save(tmp_path / "ix")
    loaded = VectorIndex.load(tmp_path / "ix", model=emb.name, dimension=32)
    assert loaded.kind == "ivf" and len(loaded) == 1200
    assert faiss.downcast_index(loaded._index).nprobe == IVF_NPROBE
    loaded.add("again", [Row("again", "question", "alpha")], emb.embed(["alpha"]))
    assert loaded.hits_per_entry(emb.embed(["alpha"])[0])["again"].best == pytest.approx(
        1.0, abs=1e-5
    )
    assert json.loads((tmp_path / "ix" / "manifest.json").read_text())["kind"] == "ivf"
    # The journal reads an entry's vectors back, which IVF allows with its direct map.
    loaded.save_entry(tmp_path / "ix", "again")
    loaded.remove("e7")
    loaded.save_entry(tmp_path / "ix", "e7")
    replayed = VectorIndex.load(tmp_path / "ix", model=emb.name, dimension=32)
    assert len(replayed) == len(loaded) == 1197 and "e7" not in replayed.entry_ids
    assert replayed.hits_per_entry(emb.embed(["alpha"])[0])["again"].best == pytest.approx(
        1.0, abs=1e-5
    )


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


def test_single_entry_changes_go_to_the_journal(tmp_path: Path) -> None:
    """A TA's link costs one journal record, not a rewrite of the index files."""
    kb = small_kb(tmp_path, n=4)
    searcher = Searcher.open(kb, HashingEmbedder(64), tmp_path / "ix")
    snapshot = (tmp_path / "ix" / "index.faiss").stat()
    before = searcher.index.kb_hash
    searcher.upsert(kb.add_alternate("entry-0", "zebra crossing quokka"))
    kb.delete_entry("entry-3")
    searcher.remove("entry-3")
    after = (tmp_path / "ix" / "index.faiss").stat()
    assert (after.st_ino, after.st_mtime_ns) == (snapshot.st_ino, snapshot.st_mtime_ns)
    lines = (tmp_path / "ix" / "journal.jsonl").read_text().splitlines()
    assert [json.loads(line)["op"] for line in lines] == ["put", "remove"]
    assert searcher.index.kb_hash != before

    emb = CountingEmbedder(64)
    reopened = Searcher.open(KnowledgeBase.load(kb.kb_dir), emb, tmp_path / "ix")
    assert emb.calls == 0 and reopened.stats["changed"] == reopened.stats["removed"] == 0
    assert sorted(reopened.index.entry_ids) == ["entry-0", "entry-1", "entry-2"]
    assert reopened.search("zebra crossing quokka").hits[0].entry_id == "entry-0"
    assert reopened.index.kb_hash == searcher.index.kb_hash
    for entry_id, ids in searcher.index.entry_ids.items():
        got = np.vstack([reopened.index._index.reconstruct(i)
                         for i in reopened.index.entry_ids[entry_id]])
        want = np.vstack([searcher.index._index.reconstruct(i) for i in ids])
        assert np.array_equal(got, want)


def test_journal_compacts_into_a_new_snapshot(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import indexer.index

    monkeypatch.setattr(indexer.index, "MIN_COMPACT_BYTES", 0)
    kb = small_kb(tmp_path)
    searcher = Searcher.open(kb, HashingEmbedder(64), tmp_path / "ix")
    journal = tmp_path / "ix" / "journal.jsonl"
    for i in range(40):
        searcher.upsert(kb.add_alternate("entry-1", f"phrasing number {i} of entry one"))
        assert not journal.exists() or journal.stat().st_size <= 2 * (
            tmp_path / "ix" / "index.faiss").stat().st_size + 20_000
    assert searcher.index._snapshot_bytes > 0
    reopened = Searcher.open(KnowledgeBase.load(kb.kb_dir), CountingEmbedder(64), tmp_path / "ix")
    assert reopened.stats["changed"] == 0
    assert reopened.search("phrasing number 39 of entry one").hits[0].entry_id == "entry-1"


def test_a_torn_last_record_is_dropped_and_a_damaged_journal_rebuilds(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    kb = small_kb(tmp_path)
    searcher = Searcher.open(kb, HashingEmbedder(64), tmp_path / "ix")
    searcher.upsert(kb.add_alternate("entry-2", "capybara"))
    journal = tmp_path / "ix" / "journal.jsonl"
    with journal.open("a") as f:
        f.write('{"op": "put", "id": "entry-1", "vec')  # a crash mid-write
    emb = CountingEmbedder(64)
    reopened = Searcher.open(KnowledgeBase.load(kb.kb_dir), emb, tmp_path / "ix")
    assert "unfinished last record" in caplog.text
    assert emb.calls == 0 and reopened.search("capybara").hits[0].entry_id == "entry-2"

    journal.write_text("not json\n" + journal.read_text())
    emb = CountingEmbedder(64)
    rebuilt = Searcher.open(KnowledgeBase.load(kb.kb_dir), emb, tmp_path / "ix")
    assert "damaged at line 1" in caplog.text
    assert rebuilt.stats["added"] == 3 and emb.calls > 0
    assert not journal.exists()  # the rebuild wrote a fresh snapshot
    assert rebuilt.search("capybara").hits[0].entry_id == "entry-2"
