"""The long-lived parts of a running server, built once in `Services.start`.

Every object that lives as long as the app is a typed field here: nothing is
created lazily on first use, and no per-app state hides in module globals.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from indexer.embedders import Embedder
from indexer.kb import KnowledgeBase
from indexer.search import Searcher
from server.accounts import Accounts
from server.config import Settings
from server.retrieval import open_searcher
from server.review.authoring import EntryEditor
from server.review.queue import ReviewQueue
from server.sandbox import SandboxRunner, SandboxUnavailable
from server.sandbox.demo_cache import CACHE_DIR_NAME, DemoCache
from server.store import Store
from server.web.blocking import InlineWhenAlone
from server.web.ratelimit import RateLimits
from server.web.sessions import Sessions
from server.web.throttle import LoginThrottle

log = logging.getLogger("askta")

# Added to a sandbox failure that looks like a user-namespace (or /proc mount) refusal:
# in a container the usual cause is the engine's default seccomp, AppArmor and masked
# /proc, which docs/operations.md ("Container") and compose.yaml lift.
CONTAINER_USERNS_HINT = (
    " If the server runs in a container, start it with --security-opt seccomp=unconfined "
    "--security-opt apparmor=unconfined --security-opt systempaths=unconfined (compose.yaml "
    "sets them), on a host that allows unprivileged user namespaces; see docs/operations.md, "
    "Container."
)


def load_kb_for_serving(settings: Settings) -> KnowledgeBase:
    """The knowledge base with its broken files skipped, each problem logged as a warning."""
    kb = KnowledgeBase.load(settings.kb_dir, skip_broken=True)
    for problem in kb.problems:
        log.warning("knowledge base: skipped %s", problem)
    if kb.problems:
        log.warning("knowledge base: %d broken file(s) skipped (%s); `askta check` lists "
                    "every problem", len(kb.skipped_files()), ", ".join(kb.skipped_files()))
    return kb


@dataclass
class Services:
    """Settings, knowledge base, searcher, database store and sandbox of one app,
    and the objects built on them."""

    settings: Settings
    kb: KnowledgeBase
    searcher: Searcher
    store: Store
    sandbox: SandboxRunner | None = None
    sandbox_error: str | None = None
    demo_cache: DemoCache = field(init=False)
    review_queue: ReviewQueue = field(init=False)
    editor: EntryEditor = field(init=False)
    accounts: Accounts = field(init=False)
    sessions: Sessions = field(init=False)
    rate_limits: RateLimits = field(init=False)
    login_throttle: LoginThrottle = field(init=False)
    # Runs chat questions: on the event loop when alone, together in threads in a burst.
    answering: InlineWhenAlone = field(default_factory=InlineWhenAlone)

    def __post_init__(self) -> None:
        s = self.settings
        self.demo_cache = DemoCache(s.data_dir / CACHE_DIR_NAME)
        self.review_queue = ReviewQueue(self.store, self.kb, self.searcher,
                                        s.review_group_threshold)
        self.editor = EntryEditor(self.kb, self.searcher, self.store)
        self.accounts = Accounts(self.store)
        self.sessions = Sessions(s)
        self.rate_limits = RateLimits.from_settings(s)
        self.login_throttle = LoginThrottle.from_settings(s)

    @classmethod
    def start(cls, settings: Settings, embedder: Embedder | None = None) -> Services:
        """Load the KB, the model and the index, open the database, start the sandbox pool.

        A broken file of the KB does not stop the server: it is skipped, logged, and
        named by /readyz (`askta check` still fails on it). No staff action can write
        one, but a hand edit can.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        kb = load_kb_for_serving(settings)
        searcher = open_searcher(settings, kb, embedder)
        store = Store(settings.db_url)
        store.migrate()
        svc = cls(settings=settings, kb=kb, searcher=searcher, store=store)
        # Unanswered entries are in the queue from the start, and every open item is filed
        # (embedding, suggestions, group) before the first request reads the queue.
        svc.review_queue.ensure_seed_items()
        svc.review_queue.settle()
        svc.start_sandbox()
        return svc

    def start_sandbox(self) -> None:
        """Start the warm pool; if bubblewrap cannot run, say why and refuse to run code."""
        if not self.settings.sandbox_enabled:
            self.sandbox_error = (
                "Demo runs are disabled on this server (ASKTA_SANDBOX_ENABLED=false)."
            )
            return
        runner = SandboxRunner(self.settings.sandbox_config())
        try:
            runner.check()
            runner.start()
        except SandboxUnavailable as e:
            self.sandbox_error = f"Demo runs are disabled: {e}"
            if "user namespace" in str(e):
                self.sandbox_error += CONTAINER_USERNS_HINT
            log.error("%s", self.sandbox_error)
            return
        self.sandbox = runner

    def close(self) -> None:
        """Stop the pool and close the database."""
        if self.sandbox is not None:
            self.sandbox.close()
        self.store.close()
