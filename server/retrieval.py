"""Opening the searcher the way every entry point does: the model of the settings, the
index in the data dir (loaded, updated or built), the thresholds with their overrides."""

from __future__ import annotations

from collections.abc import Callable

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


def open_searcher(settings: Settings, kb: KnowledgeBase, embedder: Embedder | None = None,
                  progress: Callable[[int, int], None] | None = None) -> Searcher:
    """The searcher over `kb`: the model of the settings, the index in the data dir
    (loaded, updated or built), and the thresholds with their overrides."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedder = embedder or load_embedder(settings.model, settings.encoder)
    return Searcher.open(kb, embedder, settings.index_dir, thresholds_from(settings),
                         progress=progress)
