"""Per-client rate limits on chat questions, demo runs and feedback.

A sliding window: a client may make N requests in any window of the configured
length (`ASKTA_CHAT_RATE_LIMIT`, `ASKTA_DEMO_RATE_LIMIT`,
`ASKTA_FEEDBACK_RATE_LIMIT`, `ASKTA_EDIT_RATE_LIMIT` for runs of edited code, like
"30/minute"; "off" disables). The limiters
are built once per app, in Services.start, so every app (and every test) has
its own. With one web process they count in its memory (`SlidingWindowLimiter`);
with ASKTA_REDIS_URL every process counts in Redis through the `limits` library
(`SharedLimiter`), so a client is limited the same whichever process answers it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal, Protocol

from fastapi import Depends, Request
from limits import RateLimitItem, parse
from limits.storage import Storage
from limits.strategies import MovingWindowRateLimiter

from server.config import Settings, parse_rate
from server.web.clients import client_id
from server.web.counters import counted, counter_storage, shared
from server.web.errors import RateLimited

Kind = Literal["chat", "demo", "feedback", "edit"]
log = logging.getLogger("askta")


class Limiter(Protocol):
    """What a route's rate limit needs: count a hit, or say how long to wait."""

    def hit(self, key: str) -> float | None: ...


class SlidingWindowLimiter:
    """At most `limit` hits per `window` seconds for each key."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def hit(self, key: str) -> float | None:
        """Record a hit for `key`; None when allowed, else the seconds until one is."""
        now = self.clock()
        with self._lock:
            self._sweep(now)
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(hits[0] + self.window - now, 0.001)
            hits.append(now)
            return None

    def _sweep(self, now: float) -> None:
        # forget clients that have been quiet for a whole window, so memory stays bounded
        if now - self._last_sweep < self.window:
            return
        self._last_sweep = now
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.window]:
            del self._hits[key]


class SharedLimiter:
    """At most `rate` hits per window for each key, counted in a `limits` storage that
    every web process shares (Redis): a moving window, like SlidingWindowLimiter.

    When the storage cannot be reached the request is let through (and the error
    logged): a rate limit protects the server, and losing Redis must not stop answers.
    After a failure the storage is left alone for RETRY_S, so that a Redis that does
    not answer at all costs one request its timeout, not every request.
    """

    RETRY_S = 5.0

    def __init__(self, rate: str, storage: Storage, namespace: str = "askta-rate"):
        self.item: RateLimitItem = parse(rate)
        self.limiter = MovingWindowRateLimiter(storage)
        self.namespace = namespace
        self.error: str | None = None
        self._down_until = 0.0  # time.monotonic() before which the storage is not tried

    def hit(self, key: str) -> float | None:
        """Record a hit for `key`; None when allowed, else the seconds until one is."""
        if time.monotonic() < self._down_until:
            return None
        try:
            if self.limiter.hit(self.item, self.namespace, key):
                self.error = None
                return None
            reset = self.limiter.get_window_stats(self.item, self.namespace, key).reset_time
        except Exception as e:  # the storage is down: fail open, say so once
            if self.error is None:
                log.error("rate limits: cannot reach the shared counters (%s: %s); requests "
                          "are not limited until they answer again", type(e).__name__, e)
            self.error = f"{type(e).__name__}: {e}"
            self._down_until = time.monotonic() + self.RETRY_S
            return None
        return max(reset - time.time(), 0.001)


@dataclass
class RateLimits:
    """The app's limiters, one per kind of request (None: that kind is not limited)."""

    chat: Limiter | None
    demo: Limiter | None
    feedback: Limiter | None = None
    edit: Limiter | None = None  # a student's edited code, on top of `demo`
    shared: bool = False  # counted in Redis, together with the other web processes

    @classmethod
    def from_settings(cls, settings: Settings, storage: Storage | None = None) -> RateLimits:
        """In-memory limiters, or shared ones when `storage` is (see server.web.counters)."""
        storage = storage or counter_storage(settings)
        common = shared(storage)

        def limiter(rate: str) -> Limiter | None:
            parsed = parse_rate(rate)
            if parsed is None:
                return None
            return SharedLimiter(rate, storage) if common else SlidingWindowLimiter(*parsed)

        return cls(chat=limiter(settings.chat_rate_limit),
                   demo=limiter(settings.demo_rate_limit),
                   feedback=limiter(settings.feedback_rate_limit),
                   edit=limiter(settings.edit_rate_limit), shared=common)

    def of(self, kind: Kind) -> Limiter | None:
        """The limiter for this kind of request."""
        return {"chat": self.chat, "demo": self.demo, "feedback": self.feedback,
                "edit": self.edit}[kind]


async def check_rate(request: Request, kind: Kind) -> None:
    """Count this request against the client's limit for `kind`; raise RateLimited when over."""
    limits: RateLimits = request.app.state.services.rate_limits
    limiter = limits.of(kind)
    if limiter is None:
        return
    retry_after = await counted(limits.shared, limiter.hit, f"{kind}:{client_id(request)}")
    if retry_after is not None:
        raise RateLimited(retry_after)


# async, as in server/web/deps.py: FastAPI would run a plain def in its thread pool.
async def _demo_limit(request: Request) -> None:
    await check_rate(request, "demo")


# Use as a parameter (`_: DemoRateLimit`).
DemoRateLimit = Annotated[None, Depends(_demo_limit)]
