"""What every embedder is: texts in, L2-normalized float32 vectors out.

Imports nothing from the other embedder modules.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class EmbedderError(Exception):
    """The embedding model cannot be loaded."""


class Embedder(Protocol):
    """Anything with a name, a dimension and `embed(texts) -> (n, dim) float32, unit rows`."""

    name: str
    dimension: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def normalize(vectors: np.ndarray) -> np.ndarray:
    """The rows of `vectors` as float32 unit vectors (an all-zero row stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
