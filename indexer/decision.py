"""The answer-or-route decision as a calibrated probability.

For each candidate entry of a question, a few features (its fused score, its
lead over the best other entry, the dense and BM25 evidence, whether its
question and answer vectors agree, the question's length) go through a small
logistic model whose output is the probability that this entry is the right
answer. The bot answers when the best entry's probability reaches `answer_at` (when
the model `decides`; otherwise the score and margin rule of `Thresholds`
does); from `near_at` a routed question's best entry is offered as a near
miss ("This may answer it"); the closest answers of a routed question are
ordered by it.

The coefficients live in `decision.json` beside this module, fitted by
`askta eval --fresh --fit` for one embedding model; with any other model
(the hashing fake of the tests) the searcher keeps the score and margin rule
of `Thresholds`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from indexer.index import EntryHits

BUNDLED = Path(__file__).with_name("decision.json")

FEATURES = (
    "score",  # the fused score (dense + BM25 bonus), as the ranking uses it
    "margin",  # that score minus the best other entry's
    "dense",  # the best cosine of the entry's vectors
    "dense_margin",  # that cosine minus the best other entry's
    "lexical",  # log(1 + BM25 score)
    "lexical_top",  # 1 when no other entry has a higher BM25 score (and it is > 0)
    "question",  # the best cosine of its question and alternates
    "answer",  # the best cosine of its answer texts
    "agree",  # log(1 + how many of its vectors are within 0.05 of its best)
    "length",  # log(1 + the question's word count)
)


@dataclass(frozen=True)
class Candidate:
    """One entry a question may be about, with the evidence for it."""

    entry_id: str
    score: float  # fused score
    hits: EntryHits
    bm25: float


def features(candidates: list[Candidate], words: int) -> np.ndarray:
    """One row of FEATURES per candidate (candidates ranked best first)."""
    n = len(candidates)
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    if not n:
        return out
    scores = np.array([c.score for c in candidates])
    dense = np.array([c.hits.best for c in candidates])
    bm25 = np.array([c.bm25 for c in candidates])
    out[:, 0] = scores
    out[:, 1] = scores - _best_other(scores)
    out[:, 2] = dense
    out[:, 3] = dense - _best_other(dense)
    out[:, 4] = np.log1p(bm25)
    out[:, 5] = (bm25 > 0) & (bm25 >= bm25.max())
    out[:, 6] = [max(c.hits.question, 0.0) for c in candidates]
    out[:, 7] = [max(c.hits.answer, 0.0) for c in candidates]
    out[:, 8] = np.log1p([c.hits.close for c in candidates])
    out[:, 9] = math.log1p(words)
    return out


def _best_other(values: np.ndarray) -> np.ndarray:
    """For each position, the largest of the other values (0 when there is none)."""
    if len(values) < 2:
        return np.zeros_like(values)
    first, second = np.sort(values)[::-1][:2]
    return np.where(values >= first, second, first)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


@dataclass(frozen=True)
class DecisionModel:
    """A logistic model over FEATURES and the probabilities at which the bot acts."""

    model: str  # the embedder name it was fitted for
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    answer_at: float  # answer when the best entry's probability reaches this
    near_at: float  # offer it as a near miss from this probability
    # Whether the probability makes the answer-or-route call; when False (the fit did not
    # beat the score and margin rule on held-out questions) it only orders the closest
    # answers and picks near misses.
    decides: bool = False
    # While the rule decides: it answers only when the top entry's probability also
    # reaches this (0 for no gate). Chosen under every right answer of the rule on the
    # dev questions; it routes the rule's least likely answers.
    gate_at: float = 0.0
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    report: dict = field(default_factory=dict)  # how it was fitted and what it achieved

    def probability(self, x: np.ndarray) -> np.ndarray:
        """P(right answer) for each row of features."""
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return _sigmoid(z @ np.asarray(self.weights) + self.bias)

    def save(self, path: Path) -> None:
        """Write the model as indented JSON."""
        path.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path = BUNDLED) -> DecisionModel:
        """Read a model written by `save`."""
        data = json.loads(path.read_text(encoding="utf-8"))
        if tuple(data.get("features", ())) != FEATURES:
            raise ValueError(f"{path}: fitted for other features; refit it "
                             "(askta eval --fresh --fit)")
        return cls(**data)

    @classmethod
    def for_embedder(cls, name: str, path: Path = BUNDLED) -> DecisionModel | None:
        """The shipped model if it was fitted for this embedder, else None."""
        if not path.exists():
            return None
        model = cls.load(path)
        return model if model.model == name else None


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0,
                 iterations: int = 50) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """L2-regularised logistic regression by Newton's method on standardised features.

    Returns (mean, scale, weights, bias).
    """
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-9] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    w = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    for _ in range(iterations):
        p = _sigmoid(z @ w)
        grad = z.T @ (p - y) + penalty * w
        hess = (z * (p * (1 - p))[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return mean, scale, w[:-1], float(w[-1])


def threshold_for_precision(p: np.ndarray, right: np.ndarray, target: float) -> float:
    """The lowest probability cut whose answers (p >= cut) reach `target` precision.

    `right` says, for each question, whether answering with its best entry would be
    right. Among cuts that reach the target, the lowest answers the most.
    """
    order = np.argsort(-p)
    ps, ok = p[order], right[order].astype(float)
    precision = np.cumsum(ok) / np.arange(1, len(ok) + 1)
    best = 1.0
    for i in range(len(ps)):
        # a cut can only fall between distinct probabilities
        if (i + 1 == len(ps) or ps[i + 1] < ps[i]) and precision[i] >= target:
            best = float(ps[i])
    return best
