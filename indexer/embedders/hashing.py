"""A small deterministic embedder: the fake for tests and machines without the model."""

from __future__ import annotations

import hashlib
import re

import numpy as np

from indexer.embedders.base import normalize

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
        return normalize(out)
