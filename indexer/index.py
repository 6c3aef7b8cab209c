"""The vector store: FAISS behind build / add / remove / search / save / load.

Vectors are L2-normalized, so the inner product FAISS computes is the cosine
similarity. Saved as a directory: index.faiss, rows.json and manifest.json
(model, dimension, KB hash, per-entry hashes), which `load` checks.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
JOURNAL = "journal.jsonl"
# A snapshot is rewritten once the journal outgrows it (or this many bytes, if more).
MIN_COMPACT_BYTES = 8 << 20
# Below this many vectors an exact (flat) search is fast enough; above it the index
# is partitioned (IVF) so that one search looks at a few percent of the vectors.
IVF_MIN_VECTORS = 200_000
IVF_NPROBE = 24
# Searches run on the calling thread alone. A question is one vector, which gains
# nothing from more threads, while an OpenMP team started from a server's worker
# thread costs far more than the search and its idle workers spin, taking the CPU
# from the encoder. The setting applies to the calling thread, and is put back after
# each search: in a process that loaded torch first, faiss's omp_set_num_threads
# binds to torch's OpenMP runtime, and a PyTorch encoder on the same thread would
# otherwise run on one core (16-17 ms a question instead of 13).
SEARCH_THREADS = 1


class IndexMismatch(Exception):
    """A saved index was built with another model, dimension or format."""


@dataclass(frozen=True)
class Row:
    """What one vector stands for: an entry and which of its texts."""

    entry_id: str
    kind: str  # "question" | "alternate" | "answer"
    text: str


@dataclass
class EntryHits:
    """One entry's rows among a query's top hits: its best, and how its texts agree."""

    best: float
    row: Row
    question: float = -1.0  # best question or alternate vector (-1: none among the hits)
    answer: float = -1.0  # best answer-text vector
    close: int = 0  # rows within AGREE of the best

    AGREE = 0.05

    def add(self, score: float, kind: str) -> None:
        """Count one more of the entry's rows (rows arrive best first)."""
        if kind == "answer":
            self.answer = max(self.answer, score)
        else:
            self.question = max(self.question, score)
        self.close += score >= self.best - self.AGREE


class VectorIndex:
    """Vectors grouped by entry, searchable by cosine similarity."""

    def __init__(self, dimension: int, model: str):
        self.dimension, self.model = dimension, model
        # faiss's Python types are loose: an IndexIDMap2 over a flat index, or an IndexIVFFlat
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.rows: dict[int, Row] = {}
        self.entry_ids: dict[str, list[int]] = {}
        self.entry_hashes: dict[str, str] = {}
        self._next_id = 0
        # kb_hash is cached per change count; health checks read it beside writers.
        self._changes = 0
        self._content_hash: tuple[int, str] | None = None
        self._snapshot_bytes = 0

    @property
    def kb_hash(self) -> str:
        """Hash of the indexed content: every entry id with its entry hash.

        Readers (GET /healthz) call this without the searcher's lock, so it works on one
        copy of the hashes, and caches the result under the change count it started from:
        a change made meanwhile makes the cache stale rather than wrong.
        """
        changes, cached = self._changes, self._content_hash
        if cached is not None and cached[0] == changes:
            return cached[1]
        hashes = dict(self.entry_hashes)  # one step under the GIL: never half-iterated
        h = hashlib.sha256()
        for entry_id in sorted(hashes):
            h.update(f"{entry_id}\x1f{hashes[entry_id]}\x1e".encode())
        digest = h.hexdigest()
        self._content_hash = (changes, digest)
        return digest

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def kind(self) -> str:
        """'flat' (exact) or 'ivf' (partitioned, approximate)."""
        return "ivf" if isinstance(faiss.downcast_index(self._index), faiss.IndexIVF) else "flat"

    def optimize(self, min_vectors: int = IVF_MIN_VECTORS) -> bool:
        """Partition a large flat index into an IVF one; True when it did.

        The IVF index keeps add and remove by id, so later updates stay incremental.
        """
        n = len(self)
        if self.kind == "ivf" or n < min_vectors:
            return False
        flat = faiss.downcast_index(self._index.index)
        vectors = flat.reconstruct_n(0, n)
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        nlist = int(4 * np.sqrt(n))
        quantizer = faiss.IndexFlatIP(self.dimension)
        ivf = faiss.IndexIVFFlat(quantizer, self.dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, size=min(n, 40 * nlist), replace=False)
        ivf.train(vectors[sample])
        ivf.add_with_ids(vectors, ids)
        _with_direct_map(ivf)
        self._quantizer = quantizer  # the IVF index does not own it on the Python side
        self._index = ivf
        return True

    def add(
        self, entry_id: str, rows: list[Row], vectors: np.ndarray, entry_hash: str = ""
    ) -> None:
        """Add (or replace) the vectors of one entry."""
        if entry_id in self.entry_ids:
            self.remove(entry_id)
        if len(rows) != len(vectors):
            raise ValueError("one row per vector")
        if len(rows) == 0:
            self.entry_hashes[entry_id] = entry_hash
            self.entry_ids[entry_id] = []
            self._changes += 1
            return
        ids = np.arange(self._next_id, self._next_id + len(rows), dtype=np.int64)
        self._next_id += len(rows)
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        for i, row in zip(ids.tolist(), rows, strict=True):
            self.rows[i] = row
        self.entry_ids[entry_id] = ids.tolist()
        self.entry_hashes[entry_id] = entry_hash
        self._changes += 1

    def remove(self, entry_id: str) -> None:
        """Drop every vector of one entry."""
        ids = self.entry_ids.pop(entry_id, [])
        self.entry_hashes.pop(entry_id, None)
        self._changes += 1
        if ids:
            self._index.remove_ids(np.asarray(ids, dtype=np.int64))
            for i in ids:
                self.rows.pop(i, None)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query vector; ids are -1 where fewer exist."""
        k = max(1, min(k, len(self) or 1))
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(SEARCH_THREADS)
        try:
            scores, ids = self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)
        finally:
            faiss.omp_set_num_threads(threads)
        return scores, ids

    def hits_per_entry(self, vector: np.ndarray, k: int = 64) -> dict[str, EntryHits]:
        """For one query: each entry among the top-k hits with the evidence for it."""
        scores, ids = self.search(vector.reshape(1, -1), k)
        found: dict[str, EntryHits] = {}
        for score, i in zip(scores[0].tolist(), ids[0].tolist(), strict=True):
            if i < 0:
                continue
            row = self.rows[i]
            hits = found.get(row.entry_id)
            if hits is None:  # FAISS returns rows best first: the first one is the best
                hits = found[row.entry_id] = EntryHits(score, row)
            hits.add(score, row.kind)
        return found

    def vectors(self) -> tuple[list[Row], np.ndarray]:
        """A copy of every vector with its row, in the order they were added."""
        ids = sorted(self.rows)
        if not ids:
            return [], np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._index.reconstruct_batch(np.asarray(ids, dtype=np.int64))
        return [self.rows[i] for i in ids], np.asarray(vectors, dtype=np.float32)

    # --- persistence -----------------------------------------------------------------------
    def manifest(self) -> dict:
        return {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "model": self.model,
            "dimension": self.dimension,
            "kb_hash": self.kb_hash,
            "vectors": len(self),
            "entries": len(self.entry_ids),
            "entry_hashes": self.entry_hashes,
        }

    def save(self, directory: Path) -> None:
        """Write a snapshot of the whole index, each file replaced atomically, and
        start an empty journal."""
        directory.mkdir(parents=True, exist_ok=True)
        rows = {
            "next_id": self._next_id,
            "entries": self.entry_ids,
            "rows": {str(i): asdict(r) for i, r in self.rows.items()},
        }
        index_bytes = faiss.serialize_index(self._index).tobytes()
        _atomic_bytes(directory / "index.faiss", index_bytes)
        _atomic_bytes(directory / "rows.json", json.dumps(rows).encode())
        # The manifest goes last: a directory whose manifest matches is complete.
        _atomic_bytes(directory / "manifest.json", json.dumps(self.manifest(), indent=2).encode())
        # Replaying a journal is idempotent, so a crash before this line loses nothing.
        (directory / JOURNAL).unlink(missing_ok=True)
        self._snapshot_bytes = len(index_bytes)

    def save_entry(self, directory: Path, entry_id: str) -> None:
        """Persist the change to one entry (added, replaced or removed) as it stands now.

        The change is appended to the journal (and fsynced), which costs the entry's
        size, not the index's; once the journal outgrows the snapshot, a new snapshot
        is written instead.
        """
        if not (directory / "manifest.json").exists():
            self.save(directory)
            return
        journal = directory / JOURNAL
        size = journal.stat().st_size if journal.exists() else 0
        if size > max(self._snapshot_bytes, MIN_COMPACT_BYTES):
            self.save(directory)
            return
        if entry_id in self.entry_ids:
            ids = self.entry_ids[entry_id]
            vectors = (np.vstack([self._index.reconstruct(i) for i in ids]) if ids
                       else np.zeros((0, self.dimension), dtype=np.float32))
            record = {"op": "put", "id": entry_id, "hash": self.entry_hashes.get(entry_id, ""),
                      "rows": [asdict(self.rows[i]) for i in ids],
                      "vectors": base64.b64encode(vectors.astype(np.float32).tobytes()).decode()}
        else:
            record = {"op": "remove", "id": entry_id}
        with open(journal, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _replay(self, journal: Path) -> None:
        """Apply a journal's records in order."""
        try:
            lines = journal.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                if record["op"] == "remove":
                    self.remove(record["id"])
                else:
                    vectors = np.frombuffer(base64.b64decode(record["vectors"]),
                                            dtype=np.float32).reshape(-1, self.dimension)
                    self.add(record["id"], [Row(**r) for r in record["rows"]], vectors,
                             record["hash"])
            except (ValueError, KeyError, TypeError) as e:
                if number == len(lines):  # torn by a crash mid-write: the change is lost
                    log.warning("ignoring the unfinished last record of %s (%s)", journal, e)
                    break
                raise IndexMismatch(f"{journal} is damaged at line {number} ({e})") from None

    @classmethod
    def load(cls, directory: Path, *, model: str, dimension: int) -> VectorIndex:
        """Load a saved index; IndexMismatch if it was built differently or is incomplete."""
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            rows = json.loads((directory / "rows.json").read_text())
            raw = np.frombuffer((directory / "index.faiss").read_bytes(), dtype=np.uint8)
        except (OSError, ValueError) as e:
            raise IndexMismatch(f"no usable index in {directory} ({e})") from None
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexMismatch(f"index format {manifest.get('format')} != {FORMAT_VERSION}")
        if manifest.get("model") != model or manifest.get("dimension") != dimension:
            raise IndexMismatch(
                f"index was built with {manifest.get('model')} ({manifest.get('dimension')}d), "
                f"the server uses {model} ({dimension}d)"
            )
        index = cls(dimension, model)
        index._index = faiss.deserialize_index(raw)  # this reference owns the index
        if index.kind == "ivf":
            _with_direct_map(faiss.downcast_index(index._index))
        index._next_id = rows["next_id"]
        index.entry_ids = {k: list(v) for k, v in rows["entries"].items()}
        index.rows = {int(i): Row(**r) for i, r in rows["rows"].items()}
        index.entry_hashes = dict(manifest.get("entry_hashes", {}))
        if len(index) != manifest.get("vectors") or len(index) != len(index.rows):
            raise IndexMismatch("index files disagree with the manifest: rebuilding")
        index._snapshot_bytes = len(raw)
        index._replay(directory / JOURNAL)
        return index


def _with_direct_map(ivf: Any) -> None:
    """Search settings for an IVF index, and a map from id to vector: the journal
    reads an entry's vectors back (reconstruct), which IVF can only do with it."""
    ivf.nprobe = IVF_NPROBE
    hashtable = faiss.DirectMap.Hashtable  # type: ignore[attr-defined]
    if ivf.direct_map.type != hashtable:
        ivf.set_direct_map_type(hashtable)


def _atomic_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
