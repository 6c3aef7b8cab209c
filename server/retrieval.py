"""Opening the searcher the way every entry point does: the model of the settings, the
index in the data dir (loaded, updated or built), the decision: the calibrated model
shipped for the embedder, or the thresholds with their overrides."""

from __future__ import annotations

from collections.abc import Callable

from indexer.decision import DecisionModel
from indexer.embedders import Embedder, load_embedder
from indexer.kb import KnowledgeBase
from indexer.search import Searcher, Thresholds
from server.config import Settings


def thresholds_from(settings: Settings) -> Thresholds:
    """The calibrated thresholds, with any override from the settings."""
    t = Thresholds()
    if settings.answer_threshold is not None:
        t = t.replace(score=settings.answer_threshold)
    if settings.margin_threshold is not None:
        t = t.replace(margin=settings.margin_threshold)
    return t


def decision_from(settings: Settings, embedder: Embedder) -> DecisionModel | None:
    """The calibrated decision model shipped for this embedder, unless the settings
    override the thresholds (then the score and margin rule decides)."""
    if settings.answer_threshold is not None or settings.margin_threshold is not None:
        return None
    return DecisionModel.for_embedder(embedder.name)


def open_searcher(settings: Settings, kb: KnowledgeBase, embedder: Embedder | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Searcher:
    """The searcher over `kb`: the model of the settings, the index in the data dir
    (loaded, updated or built), and the thresholds with their overrides."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # the server's alone
    embedder = embedder or load_embedder(settings.model, settings.encoder)
    return Searcher.open(kb, embedder, settings.index_dir, thresholds_from(settings),
                         progress=progress, decision=decision_from(settings, embedder))
