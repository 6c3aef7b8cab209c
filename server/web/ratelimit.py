"""Per-client rate limits on chat questions, demo runs and feedback.

A sliding-window log: a client may make N requests in any window of the
configured length (`ASKTA_CHAT_RATE_LIMIT`, `ASKTA_DEMO_RATE_LIMIT`,
`ASKTA_FEEDBACK_RATE_LIMIT`, like "30/minute"; "off" disables). The limiters
are built once per app, in Services.start, so every app (and every test) has
its own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, Request

from server.config import Settings, parse_rate
from server.web.clients import client_id
from server.web.errors import RateLimited

Kind = Literal["chat", "demo", "feedback"]


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


@dataclass
class RateLimits:
    """The app's limiters, one per kind of request (None: that kind is not limited)."""

    chat: SlidingWindowLimiter | None
    demo: SlidingWindowLimiter | None
    feedback: SlidingWindowLimiter | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimits:
        def limiter(rate: str) -> SlidingWindowLimiter | None:
            parsed = parse_rate(rate)
            return SlidingWindowLimiter(*parsed) if parsed else None

        return cls(chat=limiter(settings.chat_rate_limit),
                   demo=limiter(settings.demo_rate_limit),
                   feedback=limiter(settings.feedback_rate_limit))

    def of(self, kind: Kind) -> SlidingWindowLimiter | None:
        """The limiter for this kind of request."""
        return {"chat": self.chat, "demo": self.demo, "feedback": self.feedback}[kind]


def check_rate(request: Request, kind: Kind) -> None:
    """Count this request against the client's limit for `kind`; raise RateLimited when over."""
    limits: RateLimits = request.app.state.services.rate_limits
    limiter = limits.of(kind)
    if limiter is None:
        return
    retry_after = limiter.hit(f"{kind}:{client_id(request)}")
    if retry_after is not None:
        raise RateLimited(retry_after)


# async, as in server/web/deps.py: FastAPI would run a plain def in its thread pool.
async def _demo_limit(request: Request) -> None:
    check_rate(request, "demo")


# Use as a parameter (`_: DemoRateLimit`).
DemoRateLimit = Annotated[None, Depends(_demo_limit)]
