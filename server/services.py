"""The long-lived parts of a running server, started once in lifespan."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from indexer.embed import Embedder
from indexer.kb import KnowledgeBase
from indexer.search import Searcher, Thresholds
from server.calls import InlineWhenAlone
from server.config import Settings

if TYPE_CHECKING:
    from server.sandbox import SandboxRunner
    from server.store import Store

log = logging.getLogger("askta")


@dataclass
class Services:
    """Settings, knowledge base, searcher, database store and sandbox of one app."""

    settings: Settings
    kb: KnowledgeBase
    searcher: Searcher
    store: Store
    sandbox: SandboxRunner | None = None
    sandbox_error: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    # Runs chat questions: on the event loop when alone, together in threads in a burst.
    answering: InlineWhenAlone = field(default_factory=InlineWhenAlone)

    @classmethod
    def start(cls, settings: Settings, embedder: Embedder | None = None) -> Services:
        """Load the KB, the model and the index, open the database, start the sandbox pool."""
        from indexer.embed import load_embedder
        from server.store import Store

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        kb = KnowledgeBase.load(settings.kb_dir)
        embedder = embedder or load_embedder(settings.model, settings.encoder)
        searcher = Searcher.open(kb, embedder, settings.index_dir, thresholds_from(settings))
        store = Store(settings.db_url)
        store.migrate()
        svc = cls(settings=settings, kb=kb, searcher=searcher, store=store)
        svc.seed_queue()
        svc.start_sandbox()
        return svc

    def seed_queue(self) -> None:
        """Entries still waiting for an answer appear in the review queue from the start."""
        from server.review import ensure_seed_items

        ensure_seed_items(self.store, self.kb)

    def start_sandbox(self) -> None:
        """Start the warm pool; if bubblewrap cannot run, say why and refuse to run code."""
        if not self.settings.sandbox_enabled:
            self.sandbox_error = (
                "Demo runs are disabled on this server (ASKTA_SANDBOX_ENABLED=false)."
            )
            return
        from server.sandbox import SandboxConfig, SandboxRunner, SandboxUnavailable

        runner = SandboxRunner(SandboxConfig.from_settings(self.settings))
        try:
            runner.check()
            runner.start()
        except SandboxUnavailable as e:
            self.sandbox_error = f"Demo runs are disabled: {e}"
            log.error("%s", self.sandbox_error)
            return
        self.sandbox = runner

    def close(self) -> None:
        """Stop the pool and close the database."""
        if self.sandbox is not None:
            self.sandbox.close()
        self.store.close()


def thresholds_from(settings: Settings) -> Thresholds:
    """The calibrated thresholds, with any override from the settings."""
    t = Thresholds()
    if settings.answer_threshold is not None:
        t = t.replace(score=settings.answer_threshold)
    if settings.margin_threshold is not None:
        t = t.replace(margin=settings.margin_threshold)
    return t
