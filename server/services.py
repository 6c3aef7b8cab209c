"""The long-lived parts of a running server, built once in `Services.start`.

Every object that lives as long as the app is a typed field here: nothing is
created lazily on first use, and no per-app state hides in module globals.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from indexer.embedders import Embedder
from indexer.kb import KnowledgeBase, folder_lock
from indexer.search import Searcher
from server.accounts import Accounts
from server.changefeed import ChangeFeed, KbFollower, open_change_feed
from server.config import Settings
from server.history import History, HistoryError, KbHistory
from server.retrieval import open_searcher
from server.review.authoring import EntryEditor
from server.review.queue import ReviewQueue
from server.runs import Executor, RunsInFlight, runs_in_flight
from server.runs.local import LocalExecutor
from server.sandbox import SandboxRunner, SandboxUnavailable
from server.sandbox.demo_cache import CACHE_DIR_NAME, DemoCache
from server.store import Store
from server.web.blocking import InlineWhenAlone
from server.web.counters import counter_storage
from server.web.metrics import Metrics
from server.web.ratelimit import RateLimits
from server.web.sessions import Sessions
from server.web.throttle import LoginThrottle

log = logging.getLogger("askta")

# A client's count of runs in flight, shared through Redis, lapses this long after its
# last run started: longer than a run waits and runs, short enough that runs a killed
# web process never released do not hold the client back for long.
IN_FLIGHT_TTL_S = 600

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
    for tmp in kb.remove_stale_temp_files():  # left by a writer killed mid-write
        log.warning("removed %s, a half-written temporary file", kb.display(tmp))
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
    # kb/ as a git working copy: each staff change one commit (History() records nothing).
    history: History = field(default_factory=History)
    # Tells the other web processes of this one's kb/ writes, and applies theirs
    # (ChangeFeed(): none, one process).
    change_feed: ChangeFeed = field(default_factory=ChangeFeed)
    follower: KbFollower = field(init=False)
    demo_cache: DemoCache = field(init=False)
    review_queue: ReviewQueue = field(init=False)
    editor: EntryEditor = field(init=False)
    accounts: Accounts = field(init=False)
    sessions: Sessions = field(init=False)
    rate_limits: RateLimits = field(init=False)
    login_throttle: LoginThrottle = field(init=False)
    # Where demo runs execute: the local pool above, or Celery workers (ASKTA_EXECUTOR).
    runs: Executor = field(init=False)
    # Runs each client has going at once (ASKTA_RUNS_IN_FLIGHT_PER_CLIENT).
    runs_in_flight: RunsInFlight = field(init=False)
    # The app's own Prometheus registry and metrics (GET /metrics).
    metrics: Metrics = field(init=False)
    # Runs chat questions: on the event loop when alone, together in threads in a burst.
    answering: InlineWhenAlone = field(default_factory=InlineWhenAlone)

    def __post_init__(self) -> None:
        s = self.settings
        self.demo_cache = DemoCache(s.data_dir / CACHE_DIR_NAME)
        self.review_queue = ReviewQueue(self.store, self.kb, self.searcher,
                                        s.review_group_threshold, history=self.history)
        self.editor = EntryEditor(self.kb, self.searcher, self.store, history=self.history)
        self.accounts = Accounts(self.store)
        self.sessions = Sessions(s)
        counters = counter_storage(s)  # memory, or Redis shared by every web process
        self.rate_limits = RateLimits.from_settings(s, counters)
        self.login_throttle = LoginThrottle.from_settings(s, counters)
        self.follower = KbFollower(self.kb, self.searcher, self.change_feed)
        self.runs = build_executor(s, lambda: self.sandbox)
        # shared like the rate limits; a count a killed process never released lapses
        self.runs_in_flight = runs_in_flight(s.runs_in_flight_per_client, s.redis_url,
                                             ttl_s=IN_FLIGHT_TTL_S)
        self.metrics = Metrics()
        self.metrics.watch(self)

    @classmethod
    def start(cls, settings: Settings, embedder: Embedder | None = None) -> Services:
        """Load the KB, the model and the index, open the database, start the sandbox pool.

        A broken file of the KB does not stop the server: it is skipped, logged, and
        named by /readyz (`askta check` still fails on it). No staff action can write
        one, but a hand edit can.
        """
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        kb = load_kb_for_serving(settings)
        history = start_history(settings, kb)
        try:
            searcher = open_searcher(settings, kb, embedder)
            store = Store(settings.db_url)
            with folder_lock(settings.data_dir):  # processes sharing it migrate in turn
                store.migrate()
        except BaseException:
            history.close()
            raise
        svc = cls(settings=settings, kb=kb, searcher=searcher, store=store, history=history,
                  change_feed=open_change_feed(settings))
        # Unanswered entries are in the queue from the start, and every open item is filed
        # (embedding, suggestions, group) before the first request reads the queue. Web
        # processes sharing this data dir do it one at a time, so no seed item is doubled.
        with folder_lock(settings.data_dir):
            svc.review_queue.ensure_seed_items()
            svc.review_queue.settle()
        svc.follower.start()
        svc.start_sandbox()
        return svc

    def start_sandbox(self) -> None:
        """Start the warm pool; if bubblewrap cannot run, say why and refuse to run code.
        With the Celery executor the workers hold the pools and this process none."""
        if self.settings.executor == "celery":
            return
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

    def close(self, grace_s: float = 0.0) -> None:
        """Wait up to `grace_s` for demo runs still going, stop the pool, then close the
        database (which first writes the questions still queued)."""
        self.follower.close()
        self.history.close()
        self.runs.close(grace_s)
        if self.sandbox is not None:
            if grace_s > 0 and (self.sandbox.running or self.sandbox.waiting):
                log.info("waiting up to %g s for %d demo run(s) to finish", grace_s,
                         self.sandbox.running + self.sandbox.waiting)
                if not self.sandbox.drain(grace_s):
                    log.warning("demo runs still going after %g s are stopped", grace_s)
            self.sandbox.close()
        self.store.close()


def build_executor(settings: Settings, runner: Callable[[], SandboxRunner | None]) -> Executor:
    """The executor ASKTA_EXECUTOR names: the local pool (`runner` gives it, or None while
    the sandbox cannot run), or Celery workers through ASKTA_REDIS_URL."""
    if settings.executor == "celery" and settings.redis_url:
        from server.runs.remote import CeleryExecutor  # imports Celery: only when used

        return CeleryExecutor(settings.redis_url, settings.runs_queue_max,
                              settings.sandbox_timeout_s)
    return LocalExecutor(runner)


def start_history(settings: Settings, kb: KnowledgeBase) -> History:
    """kb/'s git history (ASKTA_KB_GIT=auto); if the repository cannot be opened, say why
    and run without one, as with the sandbox."""
    if settings.kb_git == "off":
        return History()
    try:
        return KbHistory.start(kb, settings.data_dir / "kb-history",
                               settings.kb_git_email_domain)
    except Exception as e:  # a broken or unwritable repository: no history, not no server
        error = f"kb/ history is off: {e}"
        log.error("%s", error, exc_info=not isinstance(e, HistoryError | OSError))
        return History(error)
