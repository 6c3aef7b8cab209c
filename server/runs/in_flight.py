"""A cap on the runs one client has going at once: in this web process, or across every
web process through Redis (ASKTA_REDIS_URL).

Each run is counted under a token of its own, so a release is idempotent: releasing a
token twice, or one that was never counted, changes nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

import redis

from server.runs.redis_keys import PREFIX

# Redis: KEYS[1] the client's sorted set of tokens, each scored with the (Redis) time
# it lapses. ARGV: cap, ttl, token. 1 when counted, 0 at the cap.
TAKE = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
    return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""
# KEYS[1] the client's sorted set. The runs still counted (not lapsed).
COUNT = """
local now = tonumber(redis.call('TIME')[1])
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""
TIMEOUT_S = 2.0

log = logging.getLogger("askta")


class RunsInFlight(Protocol):
    """Counts each client's queued or running runs (ASKTA_RUNS_IN_FLIGHT_PER_CLIENT):
    one student cannot fill the queue with spinning code."""

    cap: int
    shared: bool  # counted over the network: call it off the event loop

    def take(self, client: str, token: str) -> bool:
        """Count the run `token` for `client`; False (nothing counted) when at the cap."""

    def release(self, client: str, token: str) -> None:
        """The run `token` has ended (or never started)."""

    def count(self, client: str) -> int:
        """How many runs `client` has going."""


class InFlight:
    """Runs each client has going in this web process."""

    shared = False

    def __init__(self, cap: int):
        self.cap = cap
        self._runs: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def take(self, client: str, token: str) -> bool:
        with self._lock:
            runs = self._runs.setdefault(client, set())
            if len(runs) >= self.cap:
                return False
            runs.add(token)
            return True

    def release(self, client: str, token: str) -> None:
        with self._lock:
            runs = self._runs.get(client)
            if runs is not None:
                runs.discard(token)
                if not runs:
                    del self._runs[client]

    def count(self, client: str) -> int:
        with self._lock:
            return len(self._runs.get(client, ()))


class SharedInFlight:
    """Runs each client has going in every web process, counted in Redis. Each run's
    token lapses `ttl_s` after it was counted, so runs a killed process never released
    stop counting once no run could still be going.

    When Redis cannot be reached a run is let through (and the error logged once), as
    the rate limits do: the cap protects the queue, and losing Redis must not stop demos.
    After a failure Redis is left alone for RETRY_S.
    """

    shared = True
    RETRY_S = 5.0

    def __init__(self, url: str, cap: int, ttl_s: int):
        self.cap, self.ttl_s = cap, ttl_s
        self.error: str | None = None
        self._down_until = 0.0  # time.monotonic() before which Redis is not tried
        self._redis: Any = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                                socket_connect_timeout=TIMEOUT_S)
        self._take = self._redis.register_script(TAKE)
        self._count = self._redis.register_script(COUNT)

    @staticmethod
    def key(client: str) -> str:
        return f"{PREFIX}in-flight:{client}"

    def take(self, client: str, token: str) -> bool:
        if time.monotonic() < self._down_until:
            return True
        try:
            taken = bool(self._take(keys=[self.key(client)],
                                    args=[self.cap, self.ttl_s, token]))
        except redis.RedisError as e:
            self._failed(e)
            return True
        self.error = None
        return taken

    def release(self, client: str, token: str) -> None:
        # tried even while Redis is left alone: a missed release holds a place until
        # the token lapses; removing a token that was never counted does nothing
        try:
            self._redis.zrem(self.key(client), token)
        except redis.RedisError as e:
            self._failed(e)

    def count(self, client: str) -> int:
        return int(self._count(keys=[self.key(client)]))

    def _failed(self, e: Exception) -> None:
        if self.error is None:
            log.error("runs in flight: cannot reach Redis (%s: %s); runs are let through "
                      "uncounted until it answers", type(e).__name__, e)
        self.error = f"{type(e).__name__}: {e}"
        self._down_until = time.monotonic() + self.RETRY_S


def runs_in_flight(cap: int, redis_url: str | None, ttl_s: int) -> RunsInFlight:
    """Shared through Redis when there is one, else this process's own count."""
    if redis_url:
        return SharedInFlight(redis_url, cap, ttl_s)
    return InFlight(cap)
